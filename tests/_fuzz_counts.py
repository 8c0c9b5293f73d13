"""A small pytest plugin: counts the cases each fuzz test generated and prints them in the terminal summary.

Registered from tests/conftest.py. Tests ask for the ``fuzz_count`` fixture and call it once per
generated case; the summary lists each test with its count, and the total.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

_COUNTS = pytest.StashKey[dict[str, int]]()


@pytest.fixture
def fuzz_count(request: pytest.FixtureRequest) -> Callable[[], None]:
    """Call once per generated case; the count is reported at the end of the session."""
    counts = request.config.stash.setdefault(_COUNTS, {})
    nodeid = request.node.nodeid
    counts.setdefault(nodeid, 0)

    def record() -> None:
        counts[nodeid] += 1

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print one line per fuzz test with its number of generated cases, then the total."""
    counts = config.stash.get(_COUNTS, {})
    if not counts:
        return
    terminalreporter.write_sep("-", "fuzz: generated cases per test")
    for nodeid, n in counts.items():
        terminalreporter.write_line(f"{n:7d}  {nodeid}")
    terminalreporter.write_line(f"{sum(counts.values()):7d}  total generated cases")
