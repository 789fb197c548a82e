#!/usr/bin/env bash
# Issue 5's performance acceptance: redact a 10 MiB JSON file with 1,000 secrets in < 200 ms.
# Prints the measured medians next to the reference and their ratio (< 1 is within target).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --bench redact
