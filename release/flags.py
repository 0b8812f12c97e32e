"""Whole numbers from the command line: the text of a flag such as --requests or --bake, checked
here rather than by invoke, whose int flags end in a traceback on text like "abc"."""

from __future__ import annotations

import re

from release.errors import ReleaseError


class FlagError(ReleaseError):
    """A flag whose value cannot be used; the message names the flag, the value and the range."""


def whole_number(value: object, flag: str, *, minimum: int = 0,
                 maximum: int | None = None) -> int:
    """`value` (an int, or its text) as an int from `minimum` to `maximum` (None: no limit)."""
    text = str(value).strip()
    number = int(text) if re.fullmatch(r"[+-]?\d+", text) else None
    if number is None or number < minimum or (maximum is not None and number > maximum):
        span = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise FlagError(f"{flag} = {value!r}: must be a whole number {span}")
    return number
