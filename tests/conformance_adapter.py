"""Run the JSON conformance vectors in tests/vectors/ against any implementation.

    RLSD_IMPL=package.module python -m pytest tests/test_conformance.py     (default: rlsd)

The module must expose the public functions of rlsd.py under the same names, taking the
case inputs positionally (in the order listed in the JSON) and kwargs by name. Every list
becomes a float64 torch tensor, the mask included. A module that does not follow a
convention declares it, and the cases carrying that flag are skipped with a reason:

    CONFORMANCE_SKIP_FLAGS = {"SingletonGroup"}          # module attribute, or
    RLSD_SKIP_FLAGS=SingletonGroup,EmptyResponse          # environment variable
"""

import builtins
import importlib
import json
import os
from pathlib import Path

import numpy as np
import torch

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
FORMAT_VERSION = 1


def load_impl(name=None):
    """The implementation under test: RLSD_IMPL (a dotted module name), default 'rlsd'."""
    return importlib.import_module(name or os.environ.get("RLSD_IMPL", "rlsd"))


def skip_flags(module):
    """Flags whose cases this implementation opts out of (module attribute + env var)."""
    flags = set(getattr(module, "CONFORMANCE_SKIP_FLAGS", ()))
    flags |= {f.strip() for f in os.environ.get("RLSD_SKIP_FLAGS", "").split(",") if f.strip()}
    return flags


def load_vectors():
    """All vector files, sorted by name. Each is a dict with 'function' and 'cases'."""
    docs = []
    for path in sorted(VECTOR_DIR.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path.name}: format_version {doc.get('format_version')}, "
                             f"this adapter reads {FORMAT_VERSION}")
        docs.append(doc)
    return docs


def all_cases():
    """[(function name, case dict, tolerance dict)] over every vector file."""
    return [(doc["function"], case, doc["conventions"]["tolerance"])
            for doc in load_vectors() for case in doc["cases"]]


def _to_torch(value):
    return torch.tensor(value, dtype=torch.float64) if isinstance(value, list) else value


def _as_array(value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def _compare(what, got, expected, tol):
    got, expected = _as_array(got), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {expected.shape}")
    if not np.allclose(got, expected, rtol=tol["rtol"], atol=tol["atol"]):
        raise AssertionError(f"{what}: got {got.tolist()}, expected {expected.tolist()}")


def check_case(module, function, case, tol):
    """Run one case against module; raise AssertionError (or the implementation's own
    exception) on any mismatch. Returns True when the case passes."""
    fn = getattr(module, function, None)
    if fn is None:
        raise AssertionError(f"{module.__name__} has no function {function!r}")
    inputs = {k: _to_torch(v) for k, v in case["inputs"].items()}
    if "expected_error" in case:
        expected_type = getattr(builtins, case["expected_error"])       # e.g. ValueError
        try:
            fn(*inputs.values(), **case["kwargs"])
        except expected_type:
            return True
        raise AssertionError(f"no exception; expected {case['expected_error']}")
    grad_of = case.get("expected_grad", {})
    for name in grad_of:
        inputs[name].requires_grad_(True)
    out = fn(*inputs.values(), **case["kwargs"])
    _compare("value", out, case["expected"], tol)
    if grad_of:
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            raise AssertionError("output does not require grad")
        out.sum().backward()
        for name, expected in grad_of.items():
            grad = inputs[name].grad
            _compare(f"d/d{name}", torch.zeros_like(inputs[name]) if grad is None else grad,
                     expected, tol)
    return True


def failing_cases(module):
    """[(function, case id, message)] for every non-skipped case the module fails."""
    skip = skip_flags(module)
    failures = []
    for function, case, tol in all_cases():
        if skip & set(case["flags"]):
            continue
        try:
            check_case(module, function, case, tol)
        except Exception as e:                               # noqa: BLE001
            failures.append((function, case["id"], f"{type(e).__name__}: {e}"))
    return failures
