#!/usr/bin/env bash
# Redaction benchmarks (benches/redact.rs), each next to its reference with the ratio:
#   one   issue 5's acceptance: redact a 10 MiB JSON file with 1,000 secrets in < 200 ms
#         (< 1 is within target);
#   many  issue 18's many-secrets axis: 5,000 files with 500 declared secrets known, the
#         StrayMatcher built once against the search built per file and against no known
#         values at all.
#
#   scripts/bench-redact.sh [one|many]      (default: both; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --bench redact -- "$@"
