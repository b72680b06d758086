#!/usr/bin/env bash
# integrations/run_oracle.sh: run the conformance vectors (tests/vectors/) against real
# implementations, verl 0.9.1, TRL 1.16.0 (GKD and SDFT) and ms-swift 4.6.0, through the
# adapters in integrations/adapters/, and write the table of integrations/adapters/README.md.
#
#   bash integrations/run_oracle.sh          # from anywhere; about 4.3 GB of environments
#
# Run by hand, not in CI. Each peer gets its own virtual environment under ORACLE_ENVS
# (default /tmp/oracle-envs), reused when it exists: ms-swift pins trl<1.0 and
# transformers<5.20, so it cannot share TRL 1.16's. Every environment gets the CPU torch
# first and keeps it (torch is named again in the peer's install so pip cannot swap it).
# Everything runs under nice with one thread: this is bookkeeping, not a benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVS=${ORACLE_ENVS:-/tmp/oracle-envs}
RESULTS=$ENVS/results
TORCH=torch==2.13.0
export OMP_NUM_THREADS=1
mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.xml "$RESULTS"/*.txt "$RESULTS"/*.log

build() {  # build ENV PACKAGE...: the environment ENV with torch, the pinned peer and pytest
  local env=$1 start=$SECONDS
  shift
  [ -x "$ENVS/$env/bin/python" ] || nice -n 19 python3 -m venv "$ENVS/$env"
  nice -n 19 "$ENVS/$env/bin/python" -m pip install -q "$TORCH"
  nice -n 19 "$ENVS/$env/bin/python" -m pip install -q "$TORCH" "$@" pytest
  echo "environment $env ready in $((SECONDS - start)) s"
}

check() {  # check ENV ADAPTER DISTRIBUTION...: the vectors against one adapter
  local env=$1 adapter=$2
  shift 2
  local py=$ENVS/$env/bin/python
  RLSD_IMPL=integrations.adapters.$adapter nice -n 19 "$py" -m pytest -q -rA -p no:cacheprovider \
    tests/test_conformance.py --junitxml="$RESULTS/$adapter.xml" > "$RESULTS/$adapter.log" 2>&1 || true
  echo "$adapter: $(tail -n 1 "$RESULTS/$adapter.log")"
  nice -n 19 "$py" integrations/adapters/skipped_cases.py "integrations.adapters.$adapter" \
    > "$RESULTS/$adapter.skipped.txt" 2>> "$RESULTS/$adapter.log" || true
  nice -n 19 "$py" - "$@" > "$RESULTS/$adapter.txt" <<'EOF'
import sys
from importlib.metadata import version
print(", ".join(f"{name} {version(name)}" for name in sys.argv[1:]))
EOF
}

build verl verl==0.9.1
check verl verl_core verl torch transformers numpy
build trl trl==1.16.0
check trl trl_gkd trl torch transformers numpy
check trl trl_sdft trl torch transformers numpy
build swift ms-swift==4.6.0
check swift ms_swift ms-swift torch transformers trl numpy

nice -n 19 python3 integrations/adapters/oracle_table.py "$RESULTS" integrations/adapters/README.md
echo "table written to integrations/adapters/README.md (logs, and what each adapter's declared"
echo "flags skip, run anyway, in $RESULTS)"
