"""Every random seed in the tests goes through :func:`seed`, so that one environment variable shifts them all.

``BAYESCRT_TEST_SEED_SHIFT=k pytest -m mcmc`` reruns the MCMC tier with every sampler and data seed moved
by ``k``: a test that passes only for its fixed seed fails under some shift. CI runs with no shift.
"""

import os

_RAW = os.environ.get("BAYESCRT_TEST_SEED_SHIFT", "0")
try:
    SHIFT = int(_RAW)
except ValueError:
    raise RuntimeError(f"BAYESCRT_TEST_SEED_SHIFT={_RAW!r} must be an integer, e.g. 1") from None
if SHIFT < 0:
    raise RuntimeError(f"BAYESCRT_TEST_SEED_SHIFT={SHIFT} must be >= 0 (seeds are non-negative)")


def seed(k: int) -> int:
    """The test's fixed seed ``k``, shifted by ``BAYESCRT_TEST_SEED_SHIFT``."""
    return k + SHIFT
