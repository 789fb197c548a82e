#!/usr/bin/env bash
# Benchmark of the resolver: 1,000 handles over 200 paths from a local OpenBao dev server,
# side by side with a sequential one-request-per-handle baseline, and their ratio.
# Release build (LTO) by default; `cargo test --bench resolve` runs the same code unoptimized
# (dependencies at opt-level 2) when a release build takes too long.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tools.sh
ensure_tools
cargo bench --bench resolve "$@"
