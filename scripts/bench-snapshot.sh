#!/usr/bin/env bash
# Snapshot time and peak memory: `agentbak snapshot` (the first snapshot into the default
# incremental repository, and into `repository_format: archives`) against `tar -c | zstd -3
# -T0` and `restic backup` of the same tree, side by side in one run, best of N, with the
# ratios.
# Issue 6's targets: at most 1.3x `tar | zstd -3 -T0`, peak RSS at most 100 MiB.
#
#   scripts/bench-snapshot.sh [SIZE_MIB] [RUNS]      (defaults: 500 3)
#
# The state is agent-like: JSONL logs with provider-looking keys and a few real assignments,
# memory notes, and half-random blobs; one declared secret in a config file. agentbak does
# more than the references: it reads every byte through the leak gate (known values in every
# encoding plus the rules) and hashes every file with blake3, then fsyncs; so does restic
# (chunking, hashing, AES); tar | zstd only compresses.
# AGENTBAK_BIN: a binary to measure instead of a fresh release build. BENCH_DIR: where to
# generate the state and keep it afterwards (for profiling); default a temporary folder,
# removed at the end. Needs zstd, tar, and
# restic for the third column (apt install restic; skipped when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-500}"
RUNS="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
. scripts/tools.sh
BIN="$(bench_bin)"
if [ -n "${BENCH_DIR:-}" ]; then
    WORK="$BENCH_DIR"
    rm -rf "$WORK/state"
    mkdir -p "$WORK"
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi

python3 - "$WORK" "$SIZE_MIB" <<'PY'
import json, os, random, sys
work, size_mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(11)
state = os.path.join(work, "state")
alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
def tok(n):
    return "".join(rng.choice(alnum) for _ in range(n))
os.makedirs(os.path.join(state, "config"))
with open(os.path.join(state, "config", "credentials.json"), "w") as f:
    json.dump({"openai": {"api_key": "sk-proj-" + tok(48)}, "model": "gpt-5"}, f)
target = size_mib << 20
written = 0
i = 0
words = ("task step observation tool call result token key session user answer memory "
         "plan retry error search file read write summary").split()
while written < target:
    kind = i % 4
    if kind < 2:
        d = os.path.join(state, "logs", "%02d" % (i % 20))
        os.makedirs(d, exist_ok=True)
        lines = []
        for n in range(8000):
            w = " ".join(rng.choice(words) for _ in range(8))
            lines.append(json.dumps({"ts": 1764300000 + n, "level": "info", "msg": w,
                                     "tokens": rng.randint(1, 4000),
                                     "session_id": "sess-%d" % rng.randint(1, 99)}))
        data = ("\n".join(lines) + "\n").encode()
        name = os.path.join(d, "agent-%05d.jsonl" % i)
    elif kind == 2:
        d = os.path.join(state, "memory", "%02d" % (i % 20))
        os.makedirs(d, exist_ok=True)
        data = ("\n".join("- " + " ".join(rng.choice(words) for _ in range(12))
                          for _ in range(4000)) + "\n").encode()
        name = os.path.join(d, "notes-%05d.md" % i)
    else:
        d = os.path.join(state, "blobs", "%02d" % (i % 20))
        os.makedirs(d, exist_ok=True)
        data = os.urandom(1 << 19) + bytes(1 << 19)
        name = os.path.join(d, "blob-%05d.bin" % i)
    with open(name, "wb") as f:
        f.write(data)
    written += len(data)
    i += 1
# The default format (the incremental repository, whose chunk-id key needs a key/value store:
# a local one) and, beside it, one archive per snapshot (`repository_format: archives`).
for name, repo, fmt in (("agentbak.json", "./repo", "packs"),
                        ("agentbak-archives.json", "./repo-a", "archives")):
    json.dump({"version": 1, "agent": "bench", "state": "./state", "repository": repo,
               "repository_format": fmt,
               "stores": {"local": {"kind": "local", "path": "./keys/store.age",
                                    "identity": "./keys/store.key"}},
               "secrets": [{"file": "config/credentials.json", "json": "/openai/api_key",
                            "handle": "local:agents/bench/openai#api_key"}]},
              open(os.path.join(work, name), "w"))
PY
cat "$WORK"/state/*/*/* > /dev/null   # warm the page cache for everyone
export AGENTBAK_CACHE_DIR="$WORK/cache"
"$BIN" -q -m "$WORK/agentbak.json" secrets push > /dev/null

export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$WORK/restic-cache"
has_restic=$(command -v restic >/dev/null && echo 1 || echo 0)
declare -a A T R F
AM=0; RM=0; FM=0
for run in $(seq "$RUNS"); do
    rm -rf "$WORK/repo" "$WORK/repo-a" "$WORK/cache" "$WORK/out.tar.zst"; sync
    time_rss "$WORK/tz" sh -c "tar -C '$WORK' -cf - state | zstd -q -3 -T0 -o '$WORK/out.tar.zst'"
    T+=("$(cat "$WORK/tz.t")")
    sync
    time_rss "$WORK/ab" "$BIN" -q -m "$WORK/agentbak.json" snapshot
    A+=("$(cat "$WORK/ab.t")"); AM=$(( $(cat "$WORK/ab.m") > AM ? $(cat "$WORK/ab.m") : AM ))
    sync
    time_rss "$WORK/af" "$BIN" -q -m "$WORK/agentbak-archives.json" snapshot
    F+=("$(cat "$WORK/af.t")"); FM=$(( $(cat "$WORK/af.m") > FM ? $(cat "$WORK/af.m") : FM ))
    if [ "$has_restic" = 1 ]; then
        rm -rf "$WORK/restic"; restic -q init -r "$WORK/restic" >/dev/null; sync
        time_rss "$WORK/rs" restic -q -r "$WORK/restic" backup "$WORK/state"
        R+=("$(cat "$WORK/rs.t")"); RM=$(( $(cat "$WORK/rs.m") > RM ? $(cat "$WORK/rs.m") : RM ))
    fi
done
TB=$(printf '%s\n' "${T[@]}" | best)
AB=$(printf '%s\n' "${A[@]}" | best)
FB=$(printf '%s\n' "${F[@]}" | best)
SIZE=$(du -sm "$WORK/state" | cut -f1)
printf 'snapshot of a %s MiB state, best of %s, load average %s\n' \
    "$SIZE" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  tar | zstd -3 -T0    %7.2f s   %6.0f MiB/s\n' "$TB" "$(echo "$SIZE / $TB" | bc -l)"
printf '  agentbak snapshot    %7.2f s   %6.0f MiB/s   peak RSS %s MiB   ratio %.2f (target <= 1.30)\n' \
    "$AB" "$(echo "$SIZE / $AB" | bc -l)" "$((AM / 1024))" "$(echo "$AB / $TB" | bc -l)"
printf '  agentbak (archives)  %7.2f s   %6.0f MiB/s   peak RSS %s MiB   ratio %.2f\n' \
    "$FB" "$(echo "$SIZE / $FB" | bc -l)" "$((FM / 1024))" "$(echo "$FB / $TB" | bc -l)"
if [ "$has_restic" = 1 ]; then
    RB=$(printf '%s\n' "${R[@]}" | best)
    printf '  restic backup        %7.2f s   %6.0f MiB/s   peak RSS %s MiB   ratio %.2f\n' \
        "$RB" "$(echo "$SIZE / $RB" | bc -l)" "$((RM / 1024))" "$(echo "$RB / $TB" | bc -l)"
fi
