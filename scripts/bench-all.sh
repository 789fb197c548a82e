#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md, one after the other, each side by side with its
# reference in the same run. Output goes to the terminal and to target/bench-all.txt.
#
#   scripts/bench-all.sh [SIZE_MIB]        (default 500; the scan corpus is 210 MiB)
#
# AGENTBAK_BIN: a binary to measure instead of a fresh release build (scan, snapshot,
# restore). verify, resolve and redact are cargo benches (release profile). Needs zstd, tar,
# b3sum, rg, bc, and restic for the snapshot peer (apt install restic).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-500}"
mkdir -p target
{
    echo "== scan vs rg (scripts/bench-scan.sh)"; bash scripts/bench-scan.sh 210
    echo "== snapshot vs tar | zstd -3 -T0 and restic (scripts/bench-snapshot.sh)"; bash scripts/bench-snapshot.sh "$SIZE" 3
    echo "== restore vs zstd -d | tar -x (scripts/bench-restore.sh)"; bash scripts/bench-restore.sh "$SIZE" 3
    echo "== verify vs zstd -d | b3sum (scripts/bench-verify.sh)"; bash scripts/bench-verify.sh "$SIZE"
    echo "== rehydration of 1,000 handles (scripts/bench-resolve.sh)"; bash scripts/bench-resolve.sh
    echo "== redaction of 1,000 secrets (scripts/bench-redact.sh)"; bash scripts/bench-redact.sh
    echo "== snapshot of a SQLite database vs sqlite3 .backup + zstd (scripts/bench-sqlite.sh)"; bash scripts/bench-sqlite.sh "$((SIZE * 2))" 3
} 2>&1 | tee target/bench-all.txt
