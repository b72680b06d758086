"""The oracle's adapters (integrations/adapters/) and its script, checked without any peer
installed: what can be known from the files alone, plus the harness's "has no function"
skip and the table writer. The run itself needs the peers: integrations/run_oracle.sh.
"""

import ast
import json
import os
import re
import subprocess
import types
from pathlib import Path

import pytest

import rlsd
import test_conformance
from conformance_adapter import VECTOR_DIR, all_cases

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ROOT / "integrations" / "adapters"
SCRIPT = ROOT / "integrations" / "run_oracle.sh"
HELPERS = {"__init__", "oracle_table", "skipped_cases"}
ADAPTER_FILES = sorted(p for p in ADAPTERS.glob("*.py") if p.stem not in HELPERS)
VECTORS = {json.loads(p.read_text())["function"]: json.loads(p.read_text())
           for p in VECTOR_DIR.glob("*.json")}
KNOWN_FLAGS = {flag for doc in VECTORS.values() for case in doc["cases"] for flag in case["flags"]}


def parse(path):
    return ast.parse(path.read_text(), filename=str(path))


def skip_flags_of(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONFORMANCE_SKIP_FLAGS"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    return set()


def public_functions(tree):
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}


def test_there_are_adapters_for_the_three_peers():
    assert {p.stem for p in ADAPTER_FILES} == {"verl_core", "trl_gkd", "trl_sdft", "ms_swift"}


@pytest.mark.parametrize("path", ADAPTER_FILES, ids=lambda p: p.stem)
def test_adapter_declares_only_flags_the_vectors_have(path):
    flags = skip_flags_of(parse(path))
    assert isinstance(flags, set), f"{path.name}: CONFORMANCE_SKIP_FLAGS must be a set literal"
    assert flags <= KNOWN_FLAGS, f"{path.name} declares unknown flags {sorted(flags - KNOWN_FLAGS)}"


@pytest.mark.parametrize("path", ADAPTER_FILES, ids=lambda p: p.stem)
def test_adapter_functions_are_vector_functions_with_their_signature(path):
    # A misspelt name would now be skipped as "has no function": catch it here instead.
    tree = parse(path)
    assert ast.get_docstring(tree), f"{path.name} must say what it is in its first lines"
    functions = public_functions(tree)
    assert functions, f"{path.name} defines no function"
    for name, node in functions.items():
        assert name in VECTORS, f"{path.name}: {name} is not a function the vectors call"
        args = [a.arg for a in node.args.args]
        required, optional = args[:len(args) - len(node.args.defaults)], args[len(args) - len(node.args.defaults):]
        assert required == list(VECTORS[name]["cases"][0]["inputs"]), \
            f"{path.name}: {name}{tuple(required)} does not take the vectors' inputs in order"
        used = {k for case in VECTORS[name]["cases"] for k in case["kwargs"]}
        keywords = set(optional) | {a.arg for a in node.args.kwonlyargs}
        assert keywords <= used, f"{path.name}: {name} has keywords {sorted(keywords - used)} the vectors never pass"


def test_each_adapter_imports_its_peer_and_the_project_does_not_import_adapters():
    peers = {"verl_core": "verl", "trl_gkd": "trl", "trl_sdft": "trl", "ms_swift": "swift"}
    for path in ADAPTER_FILES:
        imported = {(n.module or "").split(".")[0] for n in ast.walk(parse(path))
                    if isinstance(n, ast.ImportFrom)}
        imported |= {a.name.split(".")[0] for n in ast.walk(parse(path)) if isinstance(n, ast.Import)
                     for a in n.names}
        assert peers[path.stem] in imported, f"{path.name} does not import {peers[path.stem]}"
    for path in ROOT.glob("*.py"):
        assert "integrations.adapters" not in path.read_text(), f"{path.name} imports an adapter"


def test_run_oracle_is_executable_valid_bash_and_runs_every_adapter():
    assert os.access(SCRIPT, os.X_OK), "integrations/run_oracle.sh must be executable"
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    checked = set(re.findall(r"^check \S+ (\w+)", text, flags=re.MULTILINE))
    assert checked == {p.stem for p in ADAPTER_FILES}, f"run_oracle.sh checks {sorted(checked)}"
    for pin in ("verl==0.9.1", "trl==1.16.0", "ms-swift==4.6.0", "torch==2.13.0"):
        assert pin in text, f"run_oracle.sh does not pin {pin}"


def test_a_missing_function_is_a_skip_and_a_present_one_still_fails():
    # The harness change for partial implementations (tests/test_conformance.py).
    partial = types.ModuleType("partial")
    partial.lam_schedule = lambda step, **kw: -1.0                  # present and wrong
    cases = {(fn, case["id"]): (case, tol) for fn, case, tol in all_cases()}
    case, tol = cases[("group_advantages", "two_groups_g4")]
    with pytest.raises(pytest.skip.Exception, match="has no function 'group_advantages'"):
        test_conformance.test_vector(partial, "group_advantages", case, tol)
    case, tol = cases[("lam_schedule", "step_0")]
    with pytest.raises(AssertionError):
        test_conformance.test_vector(partial, "lam_schedule", case, tol)
    partial.lam_schedule = rlsd.lam_schedule
    test_conformance.test_vector(partial, "lam_schedule", case, tol)


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_conformance" name="test_vector[aggregate:a]"/>
<testcase classname="tests.test_conformance" name="test_vector[aggregate:b]">
 <skipped type="pytest.skip" message="x.verl_core declares it does not follow: EmptyResponse"/></testcase>
<testcase classname="tests.test_conformance" name="test_vector[aggregate:c]">
 <failure message="AssertionError: value: got 1.0, expected 2.0">trace</failure></testcase>
<testcase classname="tests.test_conformance" name="test_vector[kl_k3:d]">
 <skipped type="pytest.skip" message="x.verl_core has no function 'kl_k3'"/></testcase>
</testsuite></testsuites>"""


def test_the_table_writer_counts_passes_declared_skips_failures_and_missing(tmp_path):
    import integrations.adapters.oracle_table as oracle_table
    (tmp_path / "verl_core.xml").write_text(JUNIT)
    (tmp_path / "verl_core.txt").write_text("verl 0.9.1, torch 2.13.0+cpu")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{oracle_table.BEGIN}\nold\n{oracle_table.END}\noutro\n")
    oracle_table.write(tmp_path, readme)
    text = readme.read_text()
    assert "| `verl_core` | `aggregate` | 1 | EmptyResponse (1) | 1: c |" in text
    assert "Not provided (every case skipped as \"has no function\"): `kl_k3`" in text
    assert "`verl_core` `aggregate:c`: AssertionError: value: got 1.0, expected 2.0" in text
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
