#!/usr/bin/env bash
# scripts/recover.py agrees with `agentbak restore` (without --rehydrate) on format-2 repositories.
#
#   AGENTBAK_BIN=target/debug/agentbak tests/recover/test_recover.sh
#   tests/recover/test_recover.sh --unit-only      (only the unit tests, no agentbak binary)
#
# 1. The unit tests of recover.py (test_recover_unit.py), on repositories written by
#    make_fixture.py, an independent writer of the format.
# 2. For a plain and an age-encrypted repository: a small agent state (a JSON config with one
#    declared secret, nested folders, symlinks, a symlink that leaves the state, an empty file
#    and an empty folder, a binary file, a file of several MiB that spans several chunks, 700
#    small files (a tree of several chunks), a path longer than 100 bytes, set-ID and sticky
#    bits, odd modes and mtimes) and a manifest with a local store; two snapshots (the second after a change, sharing chunks with
#    the first); each is restored with `agentbak restore ID --target A` and recovered with
#    `scripts/recover.py REPO ID B`; A and B must be the same tree: contents and symlinks
#    (`diff -r --no-dereference`), types, permission bits and mtimes (the folder itself: its mode);
#    the secret is in neither; both skip the link that leaves the state (exit 3). Then
#    check_format.py compares the repository with docs/format.md "Format 2", field by field.
# Needs bash, python3, zstd, age, age-keygen, GNU diff; b3sum (optional) for the blake3 checks.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
recover="$root/scripts/recover.py"

echo "== unit tests of recover.py" >&2
python3 "$here/test_recover_unit.py"
if [ "${1:-}" = "--unit-only" ]; then
    exit 0
fi
bin="${AGENTBAK_BIN:?set AGENTBAK_BIN to the agentbak binary, or pass --unit-only}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d "${TMPDIR:-/tmp}/agentbak-recover-e2e.XXXXXX")"
trap 'chmod -R u+rwx "$work" 2>/dev/null; rm -rf "$work"' EXIT
# Nothing of the caller's environment reaches agentbak: stores, cache and config live in $work.
unset AGENTBAK_MANIFEST AGENTBAK_IDENTITY VAULT_ADDR VAULT_TOKEN VAULT_NAMESPACE
export HOME="$work/home" XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config" \
    XDG_CACHE_HOME="$work/home/cache" AGENTBAK_CACHE_DIR="$work/home/cache/agentbak"
mkdir -p "$HOME"

fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs "$@", which must exit with one of the codes in $expect ("0" or "0 3"); prints its stdout.
run_expect() {
    local expect="$1"; shift
    local out err rc=0
    out="$("$@" 2>"$work/stderr")" || rc=$?
    err="$(cat "$work/stderr")"
    case " $expect " in
        *" $rc "*) ;;
        *) printf '%s\n' "$err" >&2; fail "\`$*\` exited $rc, expected $expect" ;;
    esac
    printf '%s' "$out"
}

# make_state DIR SECRET: the agent state.
make_state() {
    local s="$1" secret="$2"
    mkdir -p "$s/config" "$s/memory/deep/er" "$s/bin"
    printf '{\n  "openai": {"api_key": "%s", "model": "gpt-5"},\n  "name": "kevin"\n}\n' "$secret" \
        > "$s/config/credentials.json"
    printf '# notes\n\nremember the milk\n' > "$s/memory/notes.md"
    printf 'deep thoughts\n' > "$s/memory/deep/er/thought.txt"
    printf 'with a space\n' > "$s/memory/a name with spaces.txt"
    : > "$s/memory/empty"
    printf '#!/bin/sh\necho hi\n' > "$s/bin/run.sh"
    ln -s ../config/credentials.json "$s/memory/creds"
    ln -s memory/deep "$s/deeplink"
    ln -s /etc/hostname "$s/outside"
    mkdir -p "$s/memory/empty folder" "$s/shared"
    # A path longer than a tar header's 100 bytes (the virtual archive needs a GNU long name).
    local long="$s/memory/$(printf 'l%.0s' {1..60})/$(printf 'n%.0s' {1..70}).txt"
    mkdir -p "$(dirname "$long")"
    printf 'far down\n' > "$long"
    # Set-user-ID and set-group-ID bits are dropped by restore, the sticky bit is kept.
    printf '#!/bin/sh\n' > "$s/bin/suid.sh"
    python3 - "$s" <<'EOF'
import os, random, sys
rng = random.Random(21)
s = sys.argv[1]
# A binary file (NUL bytes, not text) and a file of 6 MiB: FastCDC cuts it at 64 KiB..1 MiB.
open(f"{s}/memory/model.bin", "wb").write(bytes(range(256)) * 64 + rng.randbytes(300_000))
# Enough files for a tree of several chunks (more than FastCDC's 64 KiB minimum).
os.makedirs(f"{s}/memory/many")
for i in range(700):
    open(f"{s}/memory/many/note-{i:04}.md", "w").write(f"note {i}: {rng.random()}\n" * (i % 5))
with open(f"{s}/memory/deep/history.jsonl", "w") as f:
    n = 0
    while f.tell() < 6 * 1024 * 1024:
        f.write('{"turn": %d, "text": "%s"}\n' % (n, " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "eps"]) for _ in range(rng.randint(3, 30)))))
        n += 1
EOF
    chmod 4755 "$s/bin/suid.sh"
    chmod 2750 "$s/memory/empty folder"
    chmod 1777 "$s/shared"
    chmod 600 "$s/config/credentials.json"
    chmod 640 "$s/memory/notes.md"
    chmod 755 "$s/bin/run.sh"
    chmod 750 "$s/memory/deep"
    local t=1790000000 i=0 p
    while IFS= read -r -d '' p; do
        i=$((i + 1))
        touch -h -d "@$((t + 100 * i))" "$p"
    done < <(find "$s" -depth -print0)
}

# same_tree A B: contents, links, types, modes and mtimes are the same (the roots included).
same_tree() {
    diff -r --no-dereference "$1" "$2" >&2 || fail "$1 and $2 differ"
    python3 - "$1" "$2" <<'EOF' || fail "$1 and $2 differ in types, modes or mtimes"
import os, stat, sys
def meta(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for p in [dirpath] + [os.path.join(dirpath, n) for n in dirs + files]:
            st = os.lstat(p)
            mode = None if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)
            rel = os.path.relpath(p, root)
            # agentbak's index has no entry for the state folder itself: its mtime is the restore's.
            mtime = None if rel == "." else st.st_mtime_ns
            out[rel] = (stat.S_IFMT(st.st_mode), mode, mtime, st.st_size)
    return out
a, b = meta(sys.argv[1]), meta(sys.argv[2])
bad = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
for k in bad:
    print(f"  {k}: agentbak {a.get(k)}, recover.py {b.get(k)}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

for mode in plain encrypted; do
    echo "== $mode repository" >&2
    dir="$work/$mode"
    mkdir -p "$dir/keys"
    secret="sk-proj-$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48)"
    make_state "$dir/state" "$secret"
    id_args=()
    recipients="null"
    if [ "$mode" = encrypted ]; then
        age-keygen -o "$dir/keys/backup.key" 2>/dev/null
        recipients="$(age-keygen -y "$dir/keys/backup.key")"
        id_args=(--identity "$dir/keys/backup.key")
    fi
    python3 - "$dir" "$recipients" <<'EOF'
import json, sys
d, recipient = sys.argv[1], sys.argv[2]
m = {
    "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
    "stores": {"local": {"kind": "local", "path": "./keys/store.age", "identity": "./keys/store.key"}},
    "secrets": [{"file": "config/credentials.json", "json": "/openai/api_key",
                 "handle": "local:agents/kevin/openai#api_key"}],
}
if recipient != "null":
    m["encryption"] = {"recipients": [recipient]}
json.dump(m, open(f"{d}/agentbak.json", "w"), indent=2)
EOF
    ab=("$bin" -m "$dir/agentbak.json")
    repo="$dir/backups"

    id1="$(run_expect 0 "${ab[@]}" snapshot --push-secrets)"
    # The second snapshot: one file changed, one added; most chunks are shared.
    printf 'one more thing\n' >> "$dir/state/memory/notes.md"
    printf 'new\n' > "$dir/state/memory/new.md"
    id2="$(run_expect 0 "${ab[@]}" snapshot)"
    [ "$id1" != "$id2" ] || fail "two snapshots with one id"

    for id in "$id1" "$id2"; do
        format="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["format"])' "$repo/snapshots/$id.json")"
        [ "$format" = 2 ] || fail "agentbak wrote snapshot $id in format $format; this test is about format 2"
        run_expect "3" "${ab[@]}" restore "$id" --target "$dir/A-$id" "${id_args[@]}" >/dev/null
        run_expect "3" python3 "$recover" "$repo" "$id" "$dir/B-$id" "${id_args[@]}" >/dev/null
        grep -q 'skipped the link state/outside -> /etc/hostname' "$work/stderr" \
            || fail "recover.py did not report the skipped link"
        same_tree "$dir/A-$id" "$dir/B-$id"
        [ ! -e "$dir/B-$id/outside" ] && [ ! -L "$dir/B-$id/outside" ] || fail "the link that leaves the state was created"
        # The value reaches grep on a pipe (printf is a builtin), never in an argument list.
        if printf '%s\n' "$secret" | grep -rqF -f - "$dir/B-$id" "$repo"; then
            fail "the secret value is in the recovered tree or the repository"
        fi
        grep -q '+agentbak:local:agents/kevin/openai:api_key+' "$dir/B-$id/config/credentials.json" \
            || fail "no placeholder in the recovered config"
        echo "   $id: agentbak restore and recover.py agree" >&2
    done
    # recover.py names snapshots like agentbak: `latest` and a unique prefix.
    run_expect "3" python3 "$recover" "$repo" latest "$dir/B-latest" "${id_args[@]}" >/dev/null
    same_tree "$dir/A-$id2" "$dir/B-latest"
    cmp -s "$dir/state/memory/notes.md" "$dir/B-latest/memory/notes.md" || fail "latest is not the second snapshot"
    if [ "$mode" = encrypted ]; then
        [ -n "$(find "$repo/packs" -type f -name '*.age')" ] || fail "no encrypted pack"
        [ -z "$(find "$repo/packs" -type f ! -name '*.age')" ] || fail "a plain pack in an encrypted repository"
        rc=0; python3 "$recover" "$repo" latest "$dir/B-noid" 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || fail "recover.py without the identity exited $rc, expected 2"
    fi
    # The repository is what docs/format.md "Format 2" says, field by field (check_format.py).
    python3 "$here/check_format.py" "$repo" "$mode" "$id1" "$id2" "${id_args[@]}" \
        || fail "the $mode repository is not what docs/format.md says"
done
echo "PASS: recover.py agrees with agentbak restore (plain and encrypted, two snapshots each)" >&2
