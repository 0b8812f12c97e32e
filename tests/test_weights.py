"""The one check of a share of traffic: the command line's text, environments.toml's numbers and
the alias routing's weights all go through it."""

import math

import pytest

from release.errors import ReleaseError
from release.weights import WeightError, check_weight


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "inf", "-inf", "abc", "", "1e9", 1.5,
                                   -0.1, math.nan, math.inf, True, None, [0.5]])
def test_anything_but_a_number_from_0_to_1_is_refused_naming_value_and_range(value):
    with pytest.raises(WeightError) as error:
        check_weight(value, "--weight")
    assert str(error.value) == (f"--weight = {value!r}: must be a number from 0 to 1 "
                                "(a share: 0.1 is 10 %)")
    assert isinstance(error.value, ReleaseError)


@pytest.mark.parametrize("value, expected", [("0", 0.0), ("0.1", 0.1), (" 1 ", 1.0), (0.25, 0.25),
                                             (0, 0.0), (1, 1.0)])
def test_numbers_and_their_text_are_shares(value, expected):
    assert check_weight(value) == expected
    assert isinstance(check_weight(value), float)


@pytest.mark.parametrize("value, zero, one, span", [
    (0, False, True, "in (0, 1]"),
    (1, True, False, "in [0, 1)"),
    (0, False, False, "in (0, 1)"),
    (1, False, False, "in (0, 1)"),
])
def test_an_open_end_is_refused_and_shown(value, zero, one, span):
    with pytest.raises(WeightError) as error:
        check_weight(value, "--fault-rate", zero=zero, one=one)
    assert str(error.value).startswith(f"--fault-rate = {value}: must be a number {span} ")
    assert check_weight(0.5, zero=zero, one=one) == 0.5
