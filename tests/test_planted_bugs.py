"""The training tests catch the bugs planted by ``tests/planted_bugs.py``, one at a time.

Each case copies the package and its tests to a scratch folder, plants one bug and runs the
tests that must catch it (10 to 40 s each on one core): the check stays true as the code
and the tests change. The script's control, the same tests run on the unchanged copy, is
left out here: the suite runs those tests on the unchanged package itself.
"""

import pytest

from .planted_bugs import BUGS, check


@pytest.mark.slow
@pytest.mark.runs_first
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_bug_is_caught(bug):
    assert check(bug, control=False)
