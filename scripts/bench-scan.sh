#!/usr/bin/env bash
# Scan throughput and recall, side by side in one run, on >= 200 MiB of generated agent logs
# and JSON state with planted secrets (scripts/gen-scan-corpus.py).
#
#   scripts/bench-scan.sh [SIZE_MIB]        (default 210)
#
# Runs, on the same warm corpus: `rg` on the bare keyword prefixes (the floor), `agentbak scan`
# without and with 1,000 known values, and the peers that are installed or installable here:
# ripsecrets (cargo install) and detect-secrets (pip), both on one 10.5 MiB file of the corpus:
# on this corpus they run at well under 1 MB/s, so the whole of it would take tens of minutes. Prints MB/s, the ratio to rg, peak memory, findings and recall on the planted set.
# Environment: CORPUS (default target/bench-corpus), AGENTBAK_BIN (default: a release build),
# ROUNDS (default 3: rg and agentbak alternate, best time of each),
# RIPSECRETS, DETECT_SECRETS (paths to the peers; installed into /tmp when absent; PEERS=0
# leaves them out).
# BUCKET_ORDER=1 also times, in every round, a build whose keyword prefilter hands Teddy its
# atoms in their given order instead of the optimized one (src/detect/prefilter.rs,
# `bucket_order`): the `agentbak-plain` row, built with RUSTFLAGS="--cfg agentbak_plain_order"
# into target/bench-plain-order (or AGENTBAK_PLAIN_BIN). It prints every round's time of both.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-210}"
CORPUS="${CORPUS:-target/bench-corpus}"
OUT="$CORPUS/results"
mkdir -p "$OUT"

. scripts/tools.sh
AGENTBAK_BIN="$(bench_bin)"
PLAIN_BIN=""
if [ "${BUCKET_ORDER:-0}" = 1 ]; then
    PLAIN_BIN="${AGENTBAK_PLAIN_BIN:-}"
    if [ -z "$PLAIN_BIN" ]; then
        RUSTFLAGS="--cfg agentbak_plain_order" CARGO_TARGET_DIR=target/bench-plain-order \
            cargo build --release --quiet --bin agentbak >&2
        PLAIN_BIN=target/bench-plain-order/release/agentbak
    fi
fi
if [ ! -f "$CORPUS/planted.json" ] || [ "$(cat "$CORPUS/size" 2>/dev/null)" != "$SIZE" ]; then
    echo "generating $SIZE MiB corpus in $CORPUS" >&2
    rm -rf "$CORPUS/data" "$CORPUS/known"
    python3 scripts/gen-scan-corpus.py "$CORPUS" "$SIZE"
    echo "$SIZE" > "$CORPUS/size"
fi

RIPSECRETS="${RIPSECRETS:-$(command -v ripsecrets || echo /tmp/ripsecrets/bin/ripsecrets)}"
DETECT_SECRETS="${DETECT_SECRETS:-$(command -v detect-secrets || echo /tmp/ds-venv/bin/detect-secrets)}"
if [ "${PEERS:-1}" = 0 ]; then
    RIPSECRETS="" DETECT_SECRETS=""
fi
if [ -n "$RIPSECRETS" ] && [ ! -x "$RIPSECRETS" ]; then
    echo "installing ripsecrets (cargo install) into /tmp/ripsecrets" >&2
    cargo install --quiet --root /tmp/ripsecrets ripsecrets >/dev/null 2>&1 || true
fi
if [ -n "$DETECT_SECRETS" ] && [ ! -x "$DETECT_SECRETS" ]; then
    echo "installing detect-secrets (pip) into /tmp/ds-venv" >&2
    { python3 -m venv /tmp/ds-venv && /tmp/ds-venv/bin/pip install --quiet detect-secrets; } >/dev/null 2>&1 || true
fi

DATA="$CORPUS/data"
SUBSET="$CORPUS/subset"
mkdir -p "$SUBSET"
cp -u "$DATA/logs/agent-00.jsonl" "$SUBSET/"   # detect-secrets input: one file of the corpus
cat "$DATA"/*/* > /dev/null                  # warm the page cache for everyone

# run NAME PATH COMMAND...: time one tool, keeping its best time (and that run's peak memory)
# over the rounds in $OUT/NAME.time; its stdout goes to $OUT/NAME.out.
run() {
    local name="$1" path="$2"
    shift 2
    /usr/bin/time -f "%e %M" -o "$OUT/$name.try" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err" || true
    local try best=""
    try=$(tail -1 "$OUT/$name.try" | cut -d' ' -f1)
    echo "$try" >> "$OUT/$name.all"
    if [ -f "$OUT/$name.time" ]; then
        best=$(tail -1 "$OUT/$name.time" | cut -d' ' -f1)
    fi
    if [ -z "$best" ] || [ "$(echo "$try < $best" | bc -l)" = 1 ]; then
        tail -1 "$OUT/$name.try" > "$OUT/$name.time"
    fi
    echo "$path" > "$OUT/$name.path"
}

# The machine's noise mostly slows a run down: ROUNDS rounds (default 3), alternating the
# tools, and the best time of each.
rm -f "$OUT"/*.time "$OUT"/*.all
for _ in $(seq "${ROUNDS:-3}"); do
    run rg "$DATA" rg -n --no-heading --no-ignore --hidden -F -f "$CORPUS/prefixes.txt" "$DATA"
    run agentbak "$DATA" env -u AGENTBAK_MANIFEST "$AGENTBAK_BIN" scan "$DATA" --format json
    if [ -n "$PLAIN_BIN" ]; then
        run agentbak-plain "$DATA" env -u AGENTBAK_MANIFEST "$PLAIN_BIN" scan "$DATA" --format json
    fi
    run agentbak-known "$DATA" "$AGENTBAK_BIN" -m "$CORPUS/manifest.json" scan "$DATA" --format json
done
if [ -n "$RIPSECRETS" ] && [ -x "$RIPSECRETS" ]; then
    run ripsecrets "$SUBSET" "$RIPSECRETS" "$SUBSET"
fi
if [ -n "$DETECT_SECRETS" ] && [ -x "$DETECT_SECRETS" ]; then
    run detect-secrets "$SUBSET" "$DETECT_SECRETS" scan --all-files "$SUBSET"
fi

python3 - "$CORPUS" <<'PY'
import json, os, re, sys
corpus = sys.argv[1]
out = f"{corpus}/results"
planted = json.load(open(f"{corpus}/planted.json"))

def size_of(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)

def hits(name):
    """(file relative to data/, line) pairs a tool reported."""
    text = open(f"{out}/{name}.out", errors="replace").read()
    found = set()
    if name.startswith("agentbak"):
        for f in json.loads(text)["findings"]:
            found.add((f["path"].split("/data/")[-1], f["line"]))
    elif name == "detect-secrets":
        for path, results in json.loads(text)["results"].items():
            for r in results:
                found.add(("logs/" + os.path.basename(path), r["line_number"]))
    else:
        for line in text.splitlines():
            m = re.match(r"(.+?):(\d+):", line)
            if m:
                path = m.group(1).split("/data/")[-1]
                if "/subset/" in m.group(1):
                    path = "logs/" + os.path.basename(m.group(1))
                found.add((path, int(m.group(2))))
    return found

rows = []
floor = None
for name in ["rg", "agentbak", "agentbak-plain", "agentbak-known", "ripsecrets", "detect-secrets"]:
    if not os.path.exists(f"{out}/{name}.time"):
        if name != "agentbak-plain":
            print(f"{name:15} not installed here: skipped")
        continue
    secs, rss = open(f"{out}/{name}.time").read().split()[-2:]
    path = open(f"{out}/{name}.path").read().strip()
    mb = size_of(path) / 1e6
    found = hits(name)
    subset = name in ("detect-secrets", "ripsecrets")
    scope = [p for p in planted if not subset or p["file"] == "logs/agent-00.jsonl"]
    if name in ("agentbak", "agentbak-plain"):
        scope = [p for p in scope if p["kind"] == "rule"]
    got = [p for p in scope if (p["file"], p["line"]) in found]
    planted_lines = {(p["file"], p["line"]) for p in planted}
    extra = len([h for h in found if h not in planted_lines])
    speed = mb / max(float(secs), 1e-3)
    if name == "rg":
        floor = speed
    ratio = f"{floor / speed:5.2f}x" if floor else "  -  "
    rows.append(name)
    print(f"{name:15} {mb:8.1f} MB {float(secs):7.2f} s {speed:8.1f} MB/s  rg-ratio {ratio}  "
          f"peak {int(rss) / 1024:7.1f} MiB  recall {len(got)}/{len(scope)}  other lines {extra}")
if os.path.exists(f"{out}/agentbak-plain.all"):
    times = {n: [float(t) for t in open(f"{out}/{n}.all").read().split()]
             for n in ("agentbak", "agentbak-plain")}
    for n, ts in times.items():
        print(f"{n:15} every round: " + " ".join(f"{t:.2f}" for t in ts) + " s")
    ratios = [p / o for o, p in zip(times["agentbak"], times["agentbak-plain"])]
    print("bucket order: plain / optimized time, round by round: "
          + " ".join(f"{r:.3f}" for r in ratios))
print("recall: planted secrets whose line was reported (agentbak without known values: provider"
      " tokens only; ripsecrets, detect-secrets: the one-file subset); other lines: reported lines"
      " with nothing planted")
PY
