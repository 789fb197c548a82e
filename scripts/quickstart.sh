#!/usr/bin/env bash
# The main job on the embedded default (a local age-encrypted store, no vault):
#   1. a copy of the bundled example agent (examples/quickstart) gets freshly generated keys;
#   2. the keys go into the local store (`secrets set`, values on stdin);
#   3. `snapshot` backs the state up without its secrets, `verify` checks the backup;
#   4. `restore --rehydrate` puts it back with the store's values: identical to the original;
#   5. one key is rotated in the store; a second restore hands the agent the new key.
# Usage: scripts/quickstart.sh [WORKDIR]   (default: a new temporary folder)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
cargo build --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/debug/agentbak"

rand() {
    local s=""
    while [ "${#s}" -lt "$1" ]; do s+="$(head -c 64 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')"; done
    printf '%s' "${s:0:$1}"
}
mkdir -p "$work"
cp -R "$repo/examples/quickstart/." "$work/"
cd "$work"
rm -f agentbak.json.bak
sed -i 's#"\$schema": "[^"]*"#"$schema": "'"$repo"'/schemas/manifest.schema.json"#' agentbak.json
openai="sk-proj-$(rand 48)"; github="ghp_$(rand 36)"; anthropic="sk-ant-api03-$(rand 40)"
export SESSION_TOKEN="sess_$(rand 32)"
fill() { sed -e "s#@OPENAI@#$openai#" -e "s#@GITHUB@#$github#" -e "s#@ANTHROPIC@#$anthropic#" \
             -e "s#@SESSION@#$SESSION_TOKEN#" "$1" > "$2"; }
fill state/config/credentials.json.tmpl state/config/credentials.json
fill state/dot-env.tmpl state/.env
fill state/config.yaml.tmpl state/config.yaml
fill state/logs/agent.log.tmpl state/logs/agent.log
rm state/*.tmpl state/*/*.tmpl
mkdir -p keys && chmod 700 keys

step() { printf '\n== %s\n' "$*" >&2; }
step "store the agent's keys in the local store (values on stdin, never argv)"
printf '%s' "$openai" | "$bin" secrets set 'local:agents/kevin/openai#api_key'
printf '%s' "$github" | "$bin" secrets set 'local:agents/kevin/github#token'
printf '%s' "$anthropic" | "$bin" secrets set 'local:agents/kevin/anthropic#key'

step "snapshot (the cron job)"
id="$("$bin" snapshot)"
echo "snapshot $id"
"$bin" list

step "the archive holds handles, not keys (stock zstd + tar)"
zstd -dc backups/snapshots/"$id".tar.zst | tar -xO state/config/credentials.json
if zstd -dc backups/snapshots/"$id".tar.zst | grep -a -q -e "$openai" -e "$github" -e "$anthropic" -e "$SESSION_TOKEN"; then
    echo "a secret value is in the archive" >&2; exit 1
fi

step "verify (the audit)"
"$bin" verify "$id"

step "restore --rehydrate into a new folder (the migration)"
"$bin" restore "$id" --target restored --rehydrate
diff -r state restored && echo "restored state is identical to the original"

step "rotate the OpenAI key in the store; restore again"
rotated="sk-proj-$(rand 48)"
printf '%s' "$rotated" | "$bin" secrets set 'local:agents/kevin/openai#api_key'
"$bin" restore "$id" --target restored-rotated --rehydrate
grep -q "$rotated" restored-rotated/config/credentials.json && ! grep -rq "$openai" restored-rotated \
    && echo "the restored agent has the rotated key, and the old one is nowhere"
printf '\nAll done in %s\n' "$work" >&2
