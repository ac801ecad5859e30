"""The training tests catch the bugs planted by ``tests/planted_bugs.py``, one at a time.

Each case copies the package and its tests to a scratch folder, plants one bug and runs the
tests that must catch it (about 30 s each on two cores): the check stays true as the code
and the tests change.
"""

import pytest

from .planted_bugs import BUGS, check


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_bug_is_caught(bug):
    assert check(bug)
