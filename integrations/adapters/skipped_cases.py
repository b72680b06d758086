"""What an adapter's declared flags hide: run every case its CONFORMANCE_SKIP_FLAGS skips,
anyway, and print one line per case with the outcome. run_oracle.sh calls it in each
peer's environment, from the repository root:

    python integrations/adapters/skipped_cases.py integrations.adapters.verl_core

A declared skip must be explained (tests/vectors/README.md, "Skipping flags"); this shows
what the peer actually returns there, for integrations/adapters/README.md.
"""

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conformance_adapter import all_cases, check_case, skip_flags  # noqa: E402


def outcomes(module):
    """[(function:id, declared flags, outcome)] for the cases the module's flags skip."""
    declared = skip_flags(module)
    rows = []
    for function, case, tol in all_cases():
        flags = declared & set(case["flags"])
        if not flags or not callable(getattr(module, function, None)):
            continue
        try:
            check_case(module, function, case, tol)
            outcome = "passes"
        except Exception as e:                               # noqa: BLE001
            outcome = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        rows.append((f"{function}:{case['id']}", ", ".join(sorted(flags)), outcome))
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for name, flags, outcome in outcomes(importlib.import_module(sys.argv[1])):
        print(f"- `{name}` [{flags}]: {outcome}")
