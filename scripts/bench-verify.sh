#!/usr/bin/env bash
# Deep `agentbak verify` of a ~500 MiB snapshot against `zstd -d | b3sum` on the same archive,
# side by side in one run (issue 8: verify should run at >= 80 % of the reference's speed).
#
#   scripts/bench-verify.sh [SIZE_MIB]        (default 500)
#
# Builds with the release profile (cargo bench), writes a real snapshot into a temporary
# repository, and prints seconds, MiB/s, the ratio and the load average. Needs zstd and b3sum.
# A loaded machine (load average above its core count) makes the ratio advice, not a verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in zstd b3sum; do
    command -v "$tool" >/dev/null || { echo "bench-verify: $tool is not installed (scripts/tools.sh)" >&2; exit 1; }
done
AGENTBAK_BENCH_MIB="${1:-500}" cargo bench --quiet --bench verify
