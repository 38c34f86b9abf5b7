"""The suites are real tests: a wrong implementation fails them, and a capability the
adapter does not declare skips exactly the tests that need it."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

BROKEN_REGISTRY = '''
import pytest
from stack.testing import RegistrySuite
from tests.support.memory import MemoryRegistry

class ForgetfulRegistry(MemoryRegistry):
    """Lets two versions serve at once: the bug the suite must catch."""
    def set_state(self, model, version, state):
        return self._replace(self.get_version(model, version), state)

class TestForgetful(RegistrySuite):
    @pytest.fixture
    def registry(self):
        return ForgetfulRegistry(None, None)
'''

UNDECLARED_CAPABILITY = """
import pytest
from stack.contract.capabilities import TrackerCapability
from stack.testing import TrackerSuite
from tests.support.memory import MemoryTracker

class TestWithoutArtifacts(TrackerSuite):
    capabilities = frozenset({TrackerCapability.DATASETS})

    @pytest.fixture
    def tracker(self):
        return MemoryTracker(None, None)
"""


def test_a_wrong_registry_fails_the_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken=BROKEN_REGISTRY)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_illegal_move_is_refused_and_changes_nothing*",
            "*test_only_one_version_serves_at_a_time*",
        ],
        consecutive=False,
    )


def test_an_undeclared_capability_skips_only_its_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_caps=UNDECLARED_CAPABILITY)
    result = pytester.runpytest_subprocess("-q", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9, skipped=1)
    result.stdout.fnmatch_lines(["*does not declare the 'artifacts' capability*"])
