"""Every reference to a Markdown file, in code, tests, vectors and docs, points to a file
that is in the repository (a reader who follows a reference must find it)."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MD_REF = re.compile(r"[\w./-]*\w\.md\b")


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        files = out.split()
    except (OSError, subprocess.CalledProcessError):     # not a git checkout: walk the tree
        files = [os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT) for f in fs]
    return [f for f in files if f.endswith((".py", ".md", ".json", ".txt", ".ini", ".cfg", ".toml"))
            and os.path.exists(os.path.join(ROOT, f))]


def resolves(ref, where):
    return any(os.path.isfile(os.path.normpath(os.path.join(base, ref)))
               for base in (ROOT, os.path.dirname(os.path.join(ROOT, where))))


def test_every_markdown_reference_exists():
    missing = []
    for f in tracked_files():
        with open(os.path.join(ROOT, f), encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                for ref in MD_REF.findall(line):
                    if not resolves(ref, f):
                        missing.append(f"{f}:{n}: {ref}")
    assert not missing, "references to Markdown files that are not in the repository:\n" + "\n".join(missing)


def test_the_contract_and_the_log_exist():
    for f in ("README.md", "docs/METHODS.md", "docs/LOG.md", "tests/vectors/README.md"):
        assert os.path.isfile(os.path.join(ROOT, f)), f


def test_the_reading_order_names_real_functions():
    import importlib
    import sys
    sys.path.insert(0, ROOT)
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Reading order", 1)[1].split("\n## ", 1)[0]
    modules = [importlib.import_module(m) for m in ("verify", "model", "rlsd", "train_tiny", "compare_methods",
                                                    "experiment", "density", "figures", "frontier")]
    names = [n for n in re.findall(r"`([A-Za-z_][\w.]*)`", section)
             if not n.endswith((".py", "/")) and not n.startswith("tests")]
    assert len(names) >= 20
    missing = []
    for n in names:
        head, *rest = n.split(".")
        objs = [getattr(m, head) for m in modules if hasattr(m, head)]
        for attr in rest:
            objs = [getattr(o, attr) for o in objs if hasattr(o, attr)]
        if not objs:
            missing.append(n)
    assert not missing, f"README's reading order names what the code does not have: {missing}"


def test_the_readme_stays_short():
    words = len(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().split())
    assert words <= 3000, f"README.md has {words} words; move lab-notebook material to docs/LOG.md"


def test_the_readme_numbers_come_from_the_committed_run():
    # every three-decimal number in README.md is a value of figures/summary.json,
    # figures/frontier/summary.json or figures/bench_cpu.json (rounded as printed): no number typed by hand
    import json
    values = set()

    def walk(x):
        if isinstance(x, dict):
            [walk(v) for v in x.values()]
        elif isinstance(x, list):
            [walk(v) for v in x]
        elif isinstance(x, float):
            values.update({f"{x:.3f}", f"{abs(x):.3f}"})
    for f in ("figures/summary.json", "figures/bench_cpu.json", "figures/frontier/summary.json"):
        with open(os.path.join(ROOT, f)) as fh:
            walk(json.load(fh))
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    numbers = re.findall(r"(?<![\w.])-?\d+\.\d{3}(?!\d)", text)
    assert len(numbers) > 50
    stray = sorted({n for n in numbers if n.lstrip("-") not in values})
    assert not stray, f"README.md numbers not in figures/: {stray}"


def test_the_code_keeps_its_shape():
    """One room per job, each small: every top-level file states its job in its first
    line; no function is over 60 lines, no line over 110 characters; the command line
    (compare_methods.py) stays at most 400 lines."""
    import ast
    problems = []
    files = sorted(f for f in os.listdir(ROOT) if f.endswith(".py"))
    assert {"compare_methods.py", "experiment.py", "figures.py", "frontier.py", "rlsd.py"} <= set(files)
    for f in files:
        src = open(os.path.join(ROOT, f), encoding="utf-8").read()
        if not src.startswith(f'"""{f}: '):
            problems.append(f"{f}: the first line does not state the file's job")
        problems += [f"{f}:{i} is {len(line)} characters" for i, line in enumerate(src.splitlines(), 1)
                     if len(line) > 110]
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                problems.append(f"{f}:{node.lineno} {node.name} is {node.end_lineno - node.lineno + 1} lines")
    lines = open(os.path.join(ROOT, "compare_methods.py"), encoding="utf-8").read().count("\n")
    if lines > 400:
        problems.append(f"compare_methods.py is {lines} lines")
    assert not problems, problems
