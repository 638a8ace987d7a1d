"""Fixtures, hooks and the Hypothesis profiles of the test suite. The helpers
the tests import (configurations, tolerances, random problems, comparisons)
are in ``helpers.py``; Hypothesis strategies in ``strategies.py``."""
import pytest
from hypothesis import HealthCheck, settings

from pyx_gru import _recurrent, _scan
from helpers import CONFIGS, DTYPES, PROFILE, SIMD_PATHS, SUMMARY

# Hypothesis profiles. "ci" (chosen when CI is set, as on the CI machine) draws
# the full number of examples, derandomized so that a run is reproducible;
# "dev" (the default) draws a quarter of them for quick local runs;
# "thorough" draws four times as many with fresh random seeds, to hunt for
# rare failures. Choose one with HYPOTHESIS_PROFILE=ci|dev|thorough. Property
# tests scale their example counts with helpers.EXAMPLE_SCALE.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("dev", **_common)
settings.register_profile("thorough", **_common)  # random, 4x the CI examples
settings.load_profile(PROFILE)


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARY:
        terminalreporter.write_line(line)


@pytest.fixture
def torch():
    """PyTorch, the peer that some tests compare with; without it they skip."""
    return pytest.importorskip("torch", reason="torch (an optional peer, in the 'test' extra) is not installed")


@pytest.fixture(params=SIMD_PATHS)
def simd_path(request):
    """Run the test on each vector path this CPU runs (the kernels of
    _recurrent and of _scan); restored after."""
    previous = _recurrent._set_simd(request.param), _scan._set_simd(request.param)
    yield request.param
    _recurrent._set_simd(previous[0])
    _scan._set_simd(previous[1])


@pytest.fixture(params=list(CONFIGS))
def config(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param
