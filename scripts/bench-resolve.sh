#!/usr/bin/env bash
# Benchmark of the resolver: 1,000 handles over 200 paths from a local OpenBao dev server,
# side by side with a sequential one-request-per-handle baseline, and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tools.sh
ensure_tools
cargo bench --bench resolve "$@"
