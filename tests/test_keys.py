"""Every output key stays byte-identical: users' stores are built on them. For a pinned set of
parameter combinations, the key of each task and of everything it requires is compared with
tests/pinned_keys.json, written from main at 44cdce3 before the task layer was restructured.

A key that must change on purpose (a new rule that makes different outputs from the same
parameters) changes with a version in it, and its entry here is updated in the same commit
with the reason in the message. Never regenerate the file to make this test pass."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import pytest

import pipeline
from pipeline.evaluation import OfRatingModel

PINS = json.loads((Path(__file__).parent / "pinned_keys.json").read_text())


def keys_of_graph(task: luigi.Task) -> dict[str, list[str]]:
    """The keys of `task` and of every task it requires, by task family (BucketReady has none);
    with --tuned, both rating models one of which run() yields once validation has chosen."""
    keys: dict[str, set[str]] = {}
    stack = [task]
    while stack:
        t = stack.pop()
        if t.task_family != "BucketReady":
            keys.setdefault(t.task_family, set()).add(t.key)
        requires = t.requires()
        stack.extend(luigi.task.flatten(requires))
        if isinstance(t, OfRatingModel) and "bpmf_validation" in requires:
            stack.extend((t.clone(pipeline.TrainedALS), t.clone(pipeline.TrainedBPMF)))
    return {family: sorted(found) for family, found in sorted(keys.items())}


def test_the_pins_cover_every_task_with_an_output():
    assert {pin["task"] for pin in PINS} == set(pipeline.__all__) - {"BucketReady"}
    assert len(PINS) > 80


@pytest.mark.parametrize("pin", PINS, ids=lambda pin: f"{pin['task']}-{json.dumps(pin['params'], sort_keys=True)}")
def test_every_output_key_is_as_pinned(pin):
    task = getattr(pipeline, pin["task"])(**pin["params"])
    assert keys_of_graph(task) == pin["keys"]
