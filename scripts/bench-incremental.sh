#!/usr/bin/env bash
# A day of hourly runs: `agentbak snapshot` against `restic backup` on the same changing state,
# side by side in one run. Issue 21's targets, each printed as PASS or MISS at the end:
#   - the repository after the last round is at most the size of restic's;
#   - a round over unchanged state takes at most 0.5x restic's time (sum over those rounds);
#   - a round with an hour's changes takes at most restic's time (sum over those rounds);
#   - the first snapshot takes at most 1.3x `tar -cf - state | zstd -3 -T0`;
#   - agentbak's peak RSS (every snapshot and the restore) is at most 100 MiB;
#   - restoring the last snapshot takes at most 1.3x `zstd -d | tar -x` of the same tree.
#
#   scripts/bench-incremental.sh [SIZE_MIB] [ROUNDS]      (defaults: 500 24)
#
# The state comes from scripts/gen-incremental-state.py (JSONL transcripts, a 4 KiB-page
# database with pages rewritten in place, float32 vectors, notes and configs, new and deleted
# files, an occasional large upload; one declared secret in config/credentials.json held by a
# local age store). Round 0 is the first backup of both tools and the `tar | zstd` reference;
# round K applies hour K's changes, then runs agentbak, then restic; after every sixth round
# both run once more over the unchanged state (rows marked "same"). At the end the last
# snapshot is restored by agentbak, by restic, and as `zstd -d | tar -x` of a `tar | zstd -3`
# of the same tree (untimed to make; its extraction timed, plain and followed by `sync`, since
# agentbak syncs before its rename). agentbak's restored tree is compared with the state.
#
# Caches: each run is preceded by `sync` (dirty pages written) but the page cache is not
# dropped, which takes root; every run reads a state the generator has just written, so both
# tools read from memory. Each tool keeps its local cache (agentbak's files cache, restic's
# index cache) under the work folder, between rounds as a cron job would, outside the sizes.
# Single runs on a shared machine are noisy: the load average is printed; compare ratios.
#
# AGENTBAK_BIN: the binary to measure instead of a fresh release build (scripts/tools.sh).
# BENCH_DIR: the work folder (kept afterwards); default a temporary one, removed at the end.
# BENCH_OUT: a file to write every raw number to, as JSON. BENCH_SEED: the generator's seed.
# Needs python3, zstd, tar, GNU time (/usr/bin/time) and restic (apt install restic; 0.14 or
# later, whose `init` makes a version 2 repository with compression "auto").
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-500}"
ROUNDS="${2:-24}"
SEED="${BENCH_SEED:-1}"
for tool in python3 zstd tar restic /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "bench-incremental: $tool is needed (restic: apt install restic)" >&2
        exit 2
    }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
# shellcheck source=scripts/tools.sh disable=SC1091
. scripts/tools.sh
BIN="$(bench_bin)"
GEN="$(pwd)/scripts/gen-incremental-state.py"
if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
    WORK="$(cd "$BENCH_DIR" && pwd)"
    rm -rf "${WORK:?}"/{state,repo,restic,store,cache,restic-cache,restore-a,restore-r,restore-t,log}
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/log"
LOG="$WORK/log"
ROWS="$LOG/rows.tsv"
: > "$ROWS"

echo "generating a ${SIZE_MIB} MiB state (seed $SEED)" >&2
python3 "$GEN" "$WORK/state" --size-mib "$SIZE_MIB" --seed "$SEED" init
python3 - "$WORK" <<'PY'
import json, os, sys
work = sys.argv[1]
manifest = {"version": 1, "agent": "bench", "state": os.path.join(work, "state"),
            "repository": os.path.join(work, "repo"),
            "stores": {"local": {"kind": "local",
                                 "path": os.path.join(work, "store", "bench.store.age"),
                                 "identity": os.path.join(work, "store", "bench.store.key")}},
            "secrets": [{"file": "config/credentials.json", "json": "/openai/api_key",
                         "handle": "local:agents/bench/openai#api_key"}]}
with open(os.path.join(work, "agentbak.json"), "w") as f:
    json.dump(manifest, f, indent=2)
PY
export AGENTBAK_CACHE_DIR="$WORK/cache"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$WORK/restic-cache" RESTIC_REPOSITORY="$WORK/restic"
ab() { "$BIN" -q -m "$WORK/agentbak.json" "$@"; }
# The declared value goes into the store once, so that the timed snapshots find it in sync.
ab secrets push > "$LOG/push.out" 2> "$LOG/push.err" || {
    cat "$LOG/push.err" >&2
    exit 1
}
restic -q init > "$LOG/restic-init.out"
RESTIC_REPO_VERSION="$(restic -q cat config | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"
find "$WORK/state" -type f -exec cat {} + > /dev/null   # warm the page cache

# timed NAME COMMAND...: runs COMMAND after a sync; wall seconds into $LOG/NAME.t, peak RSS KiB
# into $LOG/NAME.m, stdout and stderr into $LOG/NAME.out and .err; returns COMMAND's status.
timed() {
    local name="$1" s e rc=0
    shift
    sync
    s=$(now)
    /usr/bin/time -f "%M" -o "$LOG/$name.m" "$@" > "$LOG/$name.out" 2> "$LOG/$name.err" || rc=$?
    e=$(now)
    echo "$e - $s" | bc -l > "$LOG/$name.t"
    # GNU time puts "Command exited with non-zero status N" before the figure.
    tail -n 1 "$LOG/$name.m" > "$LOG/$name.m1" && mv "$LOG/$name.m1" "$LOG/$name.m"
    return "$rc"
}
# must NAME COMMAND...: timed, and the bench stops with the command's stderr when it fails.
must() {
    local name="$1" rc=0
    shift
    timed "$name" "$@" || rc=$?
    if [ "$rc" != 0 ]; then
        echo "bench-incremental: $name: $* exited $rc:" >&2
        cat "$LOG/$name.err" >&2
        exit 1
    fi
}
WARN=0
# One row: both tools over the state as it is now. KIND: first, changed or same.
run_round() {
    local round="$1" kind="$2" tag="$1${2:0:1}" rc=0
    timed "a$tag" "$BIN" -q -m "$WORK/agentbak.json" snapshot || rc=$?
    if [ "$rc" = 3 ]; then
        # Written with warnings: a captured secret changes what is measured; say so.
        echo "bench-incremental: round $round: agentbak exited 3 (warnings):" >&2
        cat "$LOG/a$tag.err" >&2
        WARN=1
    elif [ "$rc" != 0 ]; then
        echo "bench-incremental: round $round: agentbak snapshot exited $rc:" >&2
        cat "$LOG/a$tag.err" >&2
        exit 1
    fi
    must "r$tag" restic -q backup "$WORK/state"
    local abytes rbytes sbytes
    abytes=$(du -sb "$WORK/repo" | cut -f1)
    rbytes=$(du -sb "$WORK/restic" | cut -f1)
    sbytes=$(du -sb "$WORK/state" | cut -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$kind" \
        "$(cat "$LOG/a$tag.t")" "$(cat "$LOG/r$tag.t")" "$abytes" "$rbytes" \
        "$(cat "$LOG/a$tag.m")" "$(cat "$LOG/r$tag.m")" "$sbytes" >> "$ROWS"
    tail -n 1 "$ROWS" | awk -F'\t' '{
        printf "%5s %-7s %10.2f %9.2f %12.1f %10.1f %12.0f %10.0f %9.1f\n",
            $1, $2, $3, $4, $5 / 1048576, $6 / 1048576, $7 / 1024, $8 / 1024, $9 / 1048576 }'
}

AB_VERSION="$("$BIN" --version | awk '{print $NF}')"
RESTIC_VERSION="$(restic version | awk '{print $2}')"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'agentbak %s; restic %s (repository version %s); %s MiB state, %s rounds; load average %s\n' \
    "$AB_VERSION" "$RESTIC_VERSION" "$RESTIC_REPO_VERSION" "$SIZE_MIB" "$ROUNDS" "$LOAD_START"
must tz sh -c "tar -C '$WORK' -cf - state | zstd -q -3 -T0 > /dev/null"
printf '  tar -cf - state | zstd -3 -T0: %.2f s\n\n' "$(cat "$LOG/tz.t")"
printf '%5s %-7s %10s %9s %12s %10s %12s %10s %9s\n' round kind 'agentbak s' 'restic s' \
    'agentbak MiB' 'restic MiB' 'agentbak RSS' 'restic RSS' 'state MiB'
run_round 0 first
for k in $(seq "$ROUNDS"); do
    python3 "$GEN" "$WORK/state" --size-mib "$SIZE_MIB" --seed "$SEED" round "$k"
    run_round "$k" changed
    if [ $((k % 6)) = 0 ]; then
        run_round "$k" same
    fi
done

# Restores of the last snapshot, and the reference made from the same tree.
tar -C "$WORK" -cf - state | zstd -q -3 -T0 -o "$WORK/ref.tar.zst"
mkdir "$WORK/restore-t"
must xt sh -c "zstd -d -q -c '$WORK/ref.tar.zst' | tar -x -C '$WORK/restore-t'"
rm -rf "$WORK/restore-t" && mkdir "$WORK/restore-t"
must xs sh -c "zstd -d -q -c '$WORK/ref.tar.zst' | tar -x -C '$WORK/restore-t'; sync"
rm -rf "$WORK/restore-t" "$WORK/ref.tar.zst"
must xr restic -q restore latest --target "$WORK/restore-r"
# A failed restore is reported (MISS) rather than thrown away with the rounds' numbers. The
# restored tree must be the state, but for the declared value (a placeholder without
# --rehydrate): a restore that writes something else measures nothing.
RESTORE_OK=1
if ! timed xa "$BIN" -q -m "$WORK/agentbak.json" restore latest --target "$WORK/restore-a"; then
    echo "bench-incremental: agentbak restore failed:" >&2
    cat "$LOG/xa.err" >&2
    RESTORE_OK=0
elif ! diff -rq -x credentials.json "$WORK/state" "$WORK/restore-a" > "$LOG/diff.out" 2>&1; then
    echo "bench-incremental: agentbak's restored tree differs from the state:" >&2
    head -n 20 "$LOG/diff.out" >&2
    RESTORE_OK=0
fi
rm -rf "$WORK/restore-a" "$WORK/restore-r"
CACHES="$(du -sb "$WORK/cache" 2>/dev/null | cut -f1 || echo 0) $(du -sb "$WORK/restic-cache" | cut -f1)"
export AB_VERSION RESTIC_VERSION RESTIC_REPO_VERSION LOAD_START CACHES SEED

python3 - "$ROWS" "$LOG" "$SIZE_MIB" "$ROUNDS" "$WARN" "$RESTORE_OK" "${BENCH_OUT:-}" <<'PY'
import json, os, sys
rows_path, log, size_mib, rounds, warn, restore_ok, out = sys.argv[1:8]
def num(name, ext):
    return float(open("%s/%s.%s" % (log, name, ext)).read().split()[-1])
rows = []
for line in open(rows_path):
    r, kind, at, rt, ab, rb, am, rm, sb = line.rstrip("\n").split("\t")
    rows.append({"round": int(r), "kind": kind, "agentbak_s": float(at), "restic_s": float(rt),
                 "agentbak_repo_bytes": int(ab), "restic_repo_bytes": int(rb),
                 "agentbak_rss_kib": int(am), "restic_rss_kib": int(rm), "state_bytes": int(sb)})
tz = num("tz", "t")
restore = {"agentbak_s": num("xa", "t"), "agentbak_rss_kib": int(num("xa", "m")),
           "restic_s": num("xr", "t"), "restic_rss_kib": int(num("xr", "m")),
           "tar_x_s": num("xt", "t"), "tar_x_sync_s": num("xs", "t"),
           "tree_matches": restore_ok == "1"}
first = rows[0]
changed = [r for r in rows if r["kind"] == "changed"]
same = [r for r in rows if r["kind"] == "same"]
last = rows[-1]
def ratio(a, b):
    return a / b if b else None
checks = []
def check(name, value, target, detail):
    """value None: not measured (a failed run, a zero reference): a MISS."""
    checks.append({"what": name, "ratio": value, "target": target,
                   "pass": value is not None and value <= target, "detail": detail})
MiB = 1 << 20
check("repository after the last round vs restic's",
      ratio(last["agentbak_repo_bytes"], last["restic_repo_bytes"]), 1.0,
      "%.1f MiB vs %.1f MiB" % (last["agentbak_repo_bytes"] / MiB,
                                last["restic_repo_bytes"] / MiB))
if same:
    a, r = sum(x["agentbak_s"] for x in same), sum(x["restic_s"] for x in same)
    worst = max(x["agentbak_s"] / max(x["restic_s"], 1e-9) for x in same)
    check("unchanged rounds: time vs restic's", ratio(a, r), 0.5,
          "%d rounds, %.2f s vs %.2f s; worst round %.2fx" % (len(same), a, r, worst))
else:
    checks.append({"what": "unchanged rounds: time vs restic's", "ratio": None,
                   "target": 0.5, "pass": None, "detail": "not run: ROUNDS < 6"})
if changed:
    a, r = sum(x["agentbak_s"] for x in changed), sum(x["restic_s"] for x in changed)
    worst = max(x["agentbak_s"] / max(x["restic_s"], 1e-9) for x in changed)
    check("changed rounds: time vs restic's", ratio(a, r), 1.0,
          "%d rounds, %.2f s vs %.2f s; worst round %.2fx" % (len(changed), a, r, worst))
check("first snapshot vs tar | zstd -3 -T0", ratio(first["agentbak_s"], tz), 1.3,
      "%.2f s vs %.2f s (restic %.2f s)" % (first["agentbak_s"], tz, first["restic_s"]))
rss = max([r["agentbak_rss_kib"] for r in rows] + [restore["agentbak_rss_kib"]])
check("peak RSS, MiB", rss / 1024, 100, "restic: %.0f MiB"
      % (max(r["restic_rss_kib"] for r in rows) / 1024))
check("restore vs zstd -d | tar -x",
      ratio(restore["agentbak_s"], restore["tar_x_s"]) if restore["tree_matches"] else None,
      1.3,
      ("%.2f s vs %.2f s; with sync %.2f s (%.2fx)"
       % (restore["agentbak_s"], restore["tar_x_s"], restore["tar_x_sync_s"],
          restore["agentbak_s"] / max(restore["tar_x_sync_s"], 1e-9))
       if restore["tree_matches"] else "failed")
      + "; restic restore %.2f s" % restore["restic_s"])
print()
for c in checks:
    shown = "%7.2f" % c["ratio"] if c["ratio"] is not None else "      -"
    verdict = {True: "PASS", False: "MISS", None: "----"}[c["pass"]]
    print("  %-4s %-44s %s  (target <= %s)  %s" % (verdict, c["what"],
                                                 shown, c["target"], c["detail"]))
ab_cache, restic_cache = (int(x or 0) for x in os.environ["CACHES"].split())
load_end = open("/proc/loadavg").read().split()[:3]
print("  local caches (not counted above): agentbak %.1f MiB, restic %.1f MiB; load average %s"
      % (ab_cache / MiB, restic_cache / MiB, " ".join(load_end)))
if warn == "1":
    print("  note: agentbak exited 3 in some round (see above): the numbers include captures")
if not restore["tree_matches"]:
    print("  note: agentbak's restore failed or its tree differed from the state (see above)")
if out:
    with open(out, "w") as f:
        json.dump({"size_mib": int(size_mib), "rounds": int(rounds),
                   "seed": os.environ["SEED"], "agentbak_version": os.environ["AB_VERSION"],
                   "restic_version": os.environ["RESTIC_VERSION"],
                   "restic_repository_version": os.environ["RESTIC_REPO_VERSION"],
                   "load_average": {"start": os.environ["LOAD_START"].split(),
                                    "end": load_end},
                   "cache_bytes": {"agentbak": ab_cache, "restic": restic_cache},
                   "tar_zstd_s": tz,
                   "runs": rows, "restore": restore, "checks": checks,
                   "agentbak_warnings": warn == "1"}, f, indent=1)
        f.write("\n")
PY
