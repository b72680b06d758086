"""Conformance vectors (tests/vectors/*.json) against RLSD_IMPL (default: rlsd).

    RLSD_IMPL=package.module python -m pytest tests/test_conformance.py

A function the module does not define is skipped ("has no function"), so a peer that has
only some of the objectives (integrations/adapters/) is checked on those. rlsd.py itself
must have all of them: test_objectives.py checks it with failing_cases, which counts a
missing function as a failure.
"""

import pytest

from conformance_adapter import all_cases, check_case, load_impl, skip_flags

CASES = all_cases()


@pytest.fixture(scope="module")
def impl():
    return load_impl()


@pytest.mark.parametrize("function,case,tol", CASES,
                         ids=[f"{fn}:{case['id']}" for fn, case, _ in CASES])
def test_vector(impl, function, case, tol):
    if not callable(getattr(impl, function, None)):
        pytest.skip(f"{impl.__name__} has no function {function!r}")
    declared = skip_flags(impl) & set(case["flags"])
    if declared:
        pytest.skip(f"{impl.__name__} declares it does not follow: {', '.join(sorted(declared))}")
    assert check_case(impl, function, case, tol)  # raises, naming the values, on a mismatch
