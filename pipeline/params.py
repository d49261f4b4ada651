"""Task parameters that name themselves in their errors, and the ranges of the numeric ones.

luigi reports `--seed abc` as "invalid literal for int() with base 10: 'abc'", an unknown
choice with the choices in set order, and checks no range. These say which option is wrong
and what it accepts, wherever the value comes from (command line, luigi.cfg or code), before
any work is done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import luigi

Check = tuple[Callable[[Any], bool], str]  # a predicate, and what it accepts in words


def whole(low: int, high: int) -> Check:
    return (lambda v: low <= v <= high), f"a whole number from {low} to {high}"


FRACTION: Check = (lambda v: 0 < v < 1), "strictly between 0 and 1"
NON_NEGATIVE: Check = (lambda v: 0 <= v < math.inf), "a finite number, 0 or more"
RANK = whole(1, 10_000)
ITERATIONS = whole(1, 10_000)
TOP_N = whole(1, 1000)
SWEEPS = whole(0, 100_000)
POSITIVE: Check = (lambda v: 0 < v < math.inf), "a finite number above 0"
# EASE's popularity discount (c + 1)^β: 0 is none; beyond ±2 it is the popularity ranking or its reverse.
EXPONENT: Check = (lambda v: -2 <= v <= 2), "a number from -2 to 2"
RATING_THRESHOLD: Check = (lambda v: 0 < v <= 5), "a rating above 0, at most 5"
# EASE's weights are max_items² float32: 1 GiB at 16,384, 4 GiB at the top.
MAX_ITEMS = whole(2, 32_768)


class _Named:
    """A parameter that knows its option's name (Python tells a class attribute its name)
    and puts it in every parse or range error."""

    kind = "a value"  # what `parse` accepts, in words
    option = "the parameter"

    def __init__(self, *args, check: Check | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.check = check

    def __set_name__(self, owner, name: str) -> None:
        super().__set_name__(owner, name)  # type: ignore[misc]
        self.option = f"--{name.replace('_', '-')}"

    def parse(self, x):
        try:
            return super().parse(x)  # type: ignore[misc]
        except ValueError:
            raise ValueError(f"{self.option} must be {self.kind}, not {x!r}") from None

    def normalize(self, x):
        x = super().normalize(x)  # type: ignore[misc]
        if self.check is not None and not self.check[0](x):
            raise ValueError(f"{self.option} must be {self.check[1]}, not {x}")
        return x


class IntParameter(_Named, luigi.IntParameter):
    kind = "a whole number"


class FloatParameter(_Named, luigi.FloatParameter):
    kind = "a number"


class BoolParameter(_Named, luigi.BoolParameter):
    kind = "true or false"


class ChoiceParameter(_Named, luigi.ChoiceParameter):
    def parse(self, x):
        return self.normalize(x)  # every choice here is a string

    def normalize(self, x):
        if x not in self._choices:
            raise ValueError(f"{self.option} must be one of {', '.join(sorted(map(str, self._choices)))}, not {x!r}")
        return x


class ListParameter(_Named, luigi.ListParameter):
    """A non-empty JSON list whose every value passes `each`."""

    kind = "a JSON list such as [16, 32]"

    def __init__(self, *args, each: Check, **kwargs):
        super().__init__(*args, **kwargs)
        self.each = each

    def normalize(self, x):
        x = super().normalize(x)
        valid, expected = self.each
        if not x or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and valid(v) for v in x):
            raise ValueError(f"{self.option} must be a non-empty list of values each {expected}, not {list(x)}")
        return x
