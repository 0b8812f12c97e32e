"""Shares of traffic (canary weights, rollout steps, fault rates): the one check of a number from
0 to 1, for the command line, environments.toml and the alias routing alike."""

from __future__ import annotations

import contextlib
import math
import numbers

from release.errors import ReleaseError


class WeightError(ReleaseError):
    """A share that is not a number in its range; the message names the value and the range."""


def check_weight(value: object, name: str = "weight", *, zero: bool = True,
                 one: bool = True) -> float:
    """`value` as a float from 0 to 1; `zero=False` / `one=False` leave that end out.

    Numbers and their text (from the command line) are accepted; NaN, infinities and booleans
    are not."""
    number = math.nan  # refused below, with the value as given
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    # Both false for NaN (and one of them for an infinity): refused.
    low_ok = number >= 0 if zero else number > 0
    high_ok = number <= 1 if one else number < 1
    if not (low_ok and high_ok):
        span = ("from 0 to 1" if zero and one else
                f"in {'[' if zero else '('}0, 1{']' if one else ')'}")
        raise WeightError(f"{name} = {value!r}: must be a number {span} (a share: 0.1 is 10 %)")
    return number
