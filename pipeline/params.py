"""Task parameters that name themselves in their errors, and the ranges of the numeric ones.

luigi reports `--seed abc` as "invalid literal for int() with base 10: 'abc'" and an unknown
choice with the choices in set order; these say which option is wrong and what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import luigi

Check = tuple[Callable[[Any], bool], str]  # a predicate, and what it accepts in words


class _Named:
    """Prefixes a parse error with the option's name (values from the command line or
    luigi.cfg); `validate` checks the value's range, for StoreTask to call on every instance."""

    check: Check | None = None

    def _get_value(self, task_name, param_name):  # luigi's hook that parses command line and config values
        try:
            return super()._get_value(task_name, param_name)  # type: ignore[misc]
        except ValueError as e:
            raise ValueError(f"{option(param_name)}: {e}") from None

    def task_value(self, task_name, param_name):
        try:
            return super().task_value(task_name, param_name)  # type: ignore[misc]
        except ValueError as e:
            message = str(e)
            raise ValueError(message if message.startswith("--") else f"{option(param_name)}: {message}") from None

    def validate(self, param_name: str, value) -> None:
        if self.check is not None and not self.check[0](value):
            raise ValueError(f"{option(param_name)} must be {self.check[1]}, not {value}")


def option(param_name: str) -> str:
    return f"--{param_name.replace('_', '-')}"


def whole(low: int, high: int) -> Check:
    return (lambda v: low <= v <= high), f"a whole number from {low} to {high}"


class IntParameter(_Named, luigi.IntParameter):
    def __init__(self, *args, check: Check | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.check = check


class FloatParameter(_Named, luigi.FloatParameter):
    def __init__(self, *args, check: Check | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.check = check


class ChoiceParameter(_Named, luigi.ChoiceParameter):
    def normalize(self, x):
        if x not in self._choices:
            raise ValueError(f"{x!r} is not one of: {', '.join(sorted(map(str, self._choices)))}")
        return x


class ListParameter(_Named, luigi.ListParameter):
    """A non-empty JSON list whose every value passes `each`."""

    def __init__(self, *args, each: Check, **kwargs):
        super().__init__(*args, **kwargs)
        self.each = each

    def validate(self, param_name: str, value) -> None:
        valid, expected = self.each
        if not value or not all(isinstance(v, (int, float)) and valid(v) for v in value):
            raise ValueError(
                f"{option(param_name)} must be a non-empty list of values each {expected}, not {list(value)}"
            )


class BoolParameter(_Named, luigi.BoolParameter):
    pass


FRACTION: Check = (lambda v: 0 < v < 1), "strictly between 0 and 1"
NON_NEGATIVE: Check = (lambda v: 0 <= v < math.inf), "a finite number, 0 or more"
RANK = whole(1, 10_000)
ITERATIONS = whole(1, 10_000)
TOP_N = whole(1, 1000)
