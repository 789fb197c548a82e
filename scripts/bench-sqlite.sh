#!/usr/bin/env bash
# Snapshot of an agent's SQLite memory: `agentbak snapshot` of a state holding one database
# (the online backup into memory, every text cell through the stray search and the text
# rules, VACUUM INTO a fresh image, the leak gate, chunks into the incremental repository)
# against what an operator would script by hand, `sqlite3 DB ".backup COPY"` then
# `zstd -3 -T0 COPY`, side by side in one run, best of N, with the ratio and peak memory.
# The issue's benchmark (docs/benchmarks.md).
#
#   scripts/bench-sqlite.sh [SIZE_MIB] [RUNS]      (defaults: 1024 3)
#
# The database is agent-like, in WAL mode: a messages table of JSON-ish turns (words, tool
# outputs, a few pasted tokens that the snapshot captures), an index on it, a credentials
# table with a declared key, and a checkpoints table of blobs. The reference copies pages;
# agentbak reads every cell and proves no secret remains.
# AGENTBAK_BIN: a binary to measure instead of a fresh release build. BENCH_DIR: where to
# generate the state and keep it afterwards (for profiling); default a temporary folder,
# removed at the end. Needs sqlite3, zstd, python3, /usr/bin/time and bc.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1024}"
RUNS="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
. scripts/tools.sh
BIN="$(bench_bin)"
if [ -n "${BENCH_DIR:-}" ]; then
    WORK="$BENCH_DIR"
    rm -rf "$WORK"
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/state"

python3 - "$WORK" "$SIZE_MIB" <<'PY'
import json, os, random, sqlite3, sys
work, size_mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
def tok(n):
    return "".join(rng.choice(alnum) for _ in range(n))
words = ("task step observation tool call result token key session user answer memory "
         "plan retry error search file read write summary assistant function output").split()
db = sqlite3.connect(os.path.join(work, "state", "memory.db"))
db.execute("PRAGMA journal_mode=WAL")
db.executescript("""
CREATE TABLE credentials (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY, thread TEXT, role TEXT, content TEXT,
                       created_at TEXT);
CREATE INDEX messages_thread ON messages (thread, id);
CREATE TABLE checkpoints (thread TEXT, step INTEGER, state BLOB, PRIMARY KEY (thread, step));
""")
key = "sk-proj-" + tok(48)
db.execute("INSERT INTO credentials VALUES ('openai', ?)", (key,))
target = size_mib << 20
written = 0
i = 0
batch = []
while written < target:
    if i % 10 == 9:
        state = os.urandom(2048) + bytes(2048)
        db.execute("INSERT INTO checkpoints VALUES (?, ?, ?)", ("t%d" % (i % 97), i, state))
        written += len(state)
    else:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(40, 200)))
        if i % 5000 == 17:
            text += "\n$ env | grep TOKEN\nGITHUB_TOKEN=ghp_" + tok(36)
        content = json.dumps({"type": "message", "text": text, "tokens": rng.randint(1, 4000)})
        batch.append(("t%d" % (i % 97), ("user", "assistant", "tool")[i % 3], content,
                      "2026-12-05T10:%02d:%02dZ" % (i // 60 % 60, i % 60)))
        written += len(content) + 40
        if len(batch) == 1000:
            db.executemany("INSERT INTO messages (thread, role, content, created_at) "
                           "VALUES (?, ?, ?, ?)", batch)
            batch = []
    i += 1
if batch:
    db.executemany("INSERT INTO messages (thread, role, content, created_at) VALUES (?, ?, ?, ?)",
                   batch)
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
json.dump({"version": 1, "agent": "bench", "state": "./state", "repository": "./repo",
           "stores": {"local": {"kind": "local", "path": "./keys/store.age",
                                "identity": "./keys/store.key"}},
           "capture": {"store": "local", "path": "agents/bench/captured"},
           "secrets": [{"file": "memory.db",
                        "sqlite": {"table": "credentials", "column": "value",
                                   "where": {"name": "openai"}},
                        "handle": "local:agents/bench/openai#api_key"}]},
          open(os.path.join(work, "agentbak.json"), "w"))
PY
cat "$WORK/state/memory.db" > /dev/null   # warm the page cache for everyone
export AGENTBAK_CACHE_DIR="$WORK/cache"
"$BIN" -q -m "$WORK/agentbak.json" secrets push > /dev/null
# The first run captures the pasted tokens (exit 3); the timed runs then know them, as a
# cron job's every run after its first does.
"$BIN" -q -m "$WORK/agentbak.json" snapshot > /dev/null || [ $? -eq 3 ]

declare -a A T
AM=0; TM=0
for run in $(seq "$RUNS"); do
    rm -rf "$WORK/repo" "$WORK/cache" "$WORK/copy.db" "$WORK/copy.db.zst"; sync
    time_rss "$WORK/tz" sh -c "sqlite3 '$WORK/state/memory.db' \".backup '$WORK/copy.db'\" && zstd -q -3 -T0 --rm '$WORK/copy.db' -o '$WORK/copy.db.zst'"
    T+=("$(cat "$WORK/tz.t")"); TM=$(( $(cat "$WORK/tz.m") > TM ? $(cat "$WORK/tz.m") : TM ))
    sync
    set +e
    time_rss "$WORK/ab" "$BIN" -q -m "$WORK/agentbak.json" snapshot
    code=$?
    set -e
    [ "$code" -eq 0 ] || { echo "agentbak snapshot exited $code" >&2; exit 1; }
    A+=("$(cat "$WORK/ab.t")"); AM=$(( $(cat "$WORK/ab.m") > AM ? $(cat "$WORK/ab.m") : AM ))
done
TB=$(printf '%s\n' "${T[@]}" | best)
AB=$(printf '%s\n' "${A[@]}" | best)
SIZE=$(( $(stat -c %s "$WORK/state/memory.db") >> 20 ))
printf 'snapshot of a %s MiB SQLite database, best of %s, load average %s\n' \
    "$SIZE" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  sqlite3 .backup + zstd -3 -T0   %7.2f s   %6.0f MiB/s   peak RSS %s MiB   stored %s MiB\n' \
    "$TB" "$(echo "$SIZE / $TB" | bc -l)" "$((TM / 1024))" \
    "$(( $(stat -c %s "$WORK/copy.db.zst") >> 20 ))"
printf '  agentbak snapshot               %7.2f s   %6.0f MiB/s   peak RSS %s MiB   stored %s MiB   ratio %.2f\n' \
    "$AB" "$(echo "$SIZE / $AB" | bc -l)" "$((AM / 1024))" "$(du -sm "$WORK/repo" | cut -f1)" \
    "$(echo "$AB / $TB" | bc -l)"
