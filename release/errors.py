"""The one base of every expected failure in the release package.

A `ReleaseError` is a user-facing problem (bad input, a refused phase, AWS or Terraform saying no):
`tasks.py` prints its message as one line and exits non-zero. Anything else that escapes is a bug
and keeps its traceback.
"""


class ReleaseError(Exception):
    """An expected failure whose message names the value and the fix."""
