"""Turn the oracle's pytest results (junit XML, one file per adapter) into the Markdown
table of integrations/adapters/README.md. Standard library only; run_oracle.sh calls it:

    python3 integrations/adapters/oracle_table.py RESULTS_DIR integrations/adapters/README.md

RESULTS_DIR holds, per adapter, ADAPTER.xml (pytest --junitxml) and ADAPTER.txt (one line:
the versions installed in its environment). The table replaces what lies between the
BEGIN and END markers of the README; the text around them is left as it is.
"""

import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

BEGIN = "<!-- oracle-table: begin (written by oracle_table.py) -->"
END = "<!-- oracle-table: end -->"
DECLARED = re.compile(r"declares it does not follow: (.*)$")
MISSING = re.compile(r"has no function '(\w+)'")
CASE_ID = re.compile(r"\[(\w+):(.*)\]$")


def read_results(xml_path):
    """{function: {"passed": [ids], "skipped": {flags: [ids]}, "missing": bool,
    "failed": [(id, message)]}} from one junit XML file."""
    out = defaultdict(lambda: {"passed": [], "skipped": defaultdict(list), "missing": False,
                               "failed": []})
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        match = CASE_ID.search(case.get("name", ""))
        if not match:
            continue
        function, case_id = match.groups()
        row = out[function]
        skipped, bad = case.find("skipped"), case.find("failure")
        bad = case.find("error") if bad is None else bad
        if skipped is not None:
            message = skipped.get("message", "")
            if MISSING.search(message):
                row["missing"] = True
            else:
                declared = DECLARED.search(message)
                row["skipped"][declared.group(1) if declared else message].append(case_id)
        elif bad is not None:
            row["failed"].append((case_id, " ".join(bad.get("message", "").split())))
        else:
            row["passed"].append(case_id)
    return out


def short(message, limit=400):
    return message if len(message) <= limit else message[:limit] + " ..."


def table(results_dir):
    """The Markdown between the markers: one row per adapter and function it has."""
    results_dir = Path(results_dir)
    rows = ["| implementation (adapter) | function | passed | skipped: declared flag | failed |",
            "| --- | --- | --- | --- | --- |"]
    notes, failures = [], []
    for xml_path in sorted(results_dir.glob("*.xml")):
        adapter = xml_path.stem
        info = results_dir / f"{adapter}.txt"
        label = info.read_text().strip() if info.exists() else adapter
        results = read_results(xml_path)
        missing = sorted(f for f, r in results.items() if r["missing"])
        for function in sorted(f for f, r in results.items() if not r["missing"]):
            r = results[function]
            skipped = "; ".join(f"{flags} ({len(ids)})" for flags, ids in sorted(r["skipped"].items()))
            failed = ", ".join(case_id for case_id, _ in r["failed"])
            failed = f"{len(r['failed'])}: {failed}" if failed else "0"
            rows.append(f"| `{adapter}` | `{function}` | {len(r['passed'])} | {skipped or '-'} | {failed} |")
            failures += [f"- `{adapter}` `{function}:{case_id}`: {short(message)}"
                         for case_id, message in r["failed"]]
        notes.append(f"- `{adapter}`: {label}. Not provided (every case skipped as "
                     f"\"has no function\"): {', '.join(f'`{f}`' for f in missing) or 'none'}.")
    if len(rows) == 2:
        raise SystemExit(f"no results (*.xml) in {results_dir}")
    return "\n".join(rows + ["", *notes, "", "Failure messages, as pytest printed them:", "",
                             *(failures or ["- none"])])


def write(results_dir, readme):
    readme = Path(readme)
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} lacks the markers {BEGIN!r} and {END!r}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{table(results_dir)}\n{END}{tail}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    write(sys.argv[1], sys.argv[2])
