# Make the repository root (rlsd.py) and tests/ (conformance_adapter, mutants) importable
# under a plain `pytest` as well as `python -m pytest`.
import sys
from pathlib import Path

for p in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smoke_models(tmp_path_factory):
    """The smoke preset's base models (student, control student, teacher), trained once
    for the whole session. Use `ckpt`, a private copy, in tests."""
    import train_tiny
    d = str(tmp_path_factory.mktemp("smoke-models"))
    for over in (None, dict(cite_frac=0.0, nowork_frac=0.0)):
        train_tiny.build_base_models("smoke", d, "cpu", progress=False, log=lambda *a: None, student_overrides=over)
    return d


@pytest.fixture(scope="module")
def ckpt(smoke_models, tmp_path_factory):
    """A checkpoint folder holding the smoke base models, this module's own copy (tests
    damage files in it)."""
    d = str(tmp_path_factory.mktemp("ckpt"))
    shutil.copytree(smoke_models, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock"))
    return d


@pytest.fixture
def no_figures(monkeypatch):
    """For tests of runs, resumes and failures rather than of drawing: figures.draw_all
    records the folders it was called for instead of drawing (drawing is tested end to
    end in test_compare.py and test_frontier.py). Returns that list."""
    import figures
    calls = []
    monkeypatch.setattr(figures, "draw_all", lambda rows, S, out: calls.append(out))
    return calls
