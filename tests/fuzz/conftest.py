"""Hypothesis settings for the property tests and fuzzers in this directory.

The ``ci`` profile (the default) keeps the whole directory well under a minute on a
loaded 2-core machine; ``deep`` is for a longer local hunt:
``HYPOTHESIS_PROFILE=deep python -m pytest tests/fuzz``. No deadline: timings on a
shared machine say nothing about the code. No example database is written into the
checkout, so a run leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.fsbackend import POOL

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=60, derandomize=False, **_COMMON)
settings.register_profile("deep", max_examples=2000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def scaled(examples: int) -> int:
    """A test's own example count (set where one example is costly or cheap), scaled
    up by the deep profile."""
    return examples * 30 if PROFILE == "deep" else examples


@pytest.fixture(scope="session", autouse=True)
def fs_pool() -> Iterator[None]:
    """The thread pool of the filesystem backends the property tests create."""
    POOL.start()
    try:
        yield
    finally:
        POOL.stop()
