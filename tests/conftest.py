# Make the repository root (rlsd.py) and tests/ (conformance_adapter, mutants) importable
# under a plain `pytest` as well as `python -m pytest`.
import sys
from pathlib import Path

for p in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
