#!/usr/bin/env bash
# The main job on the embedded default (a local age-encrypted store, no vault):
#   1. a copy of the bundled example agent (examples/quickstart) gets freshly generated keys in
#      JSON, YAML, TOML, dotenv, INI, a PEM file and a log;
#   2. `init --discover --import` finds them, writes agentbak.json with one rule per secret, and
#      moves the values into the local store;
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
mkdir -p "$work/kevin"
cp -R "$repo/examples/quickstart/state" "$work/kevin/"
cd "$work/kevin"
# The local store and its identity go outside the state and the repository; here, beside them
# (by default: ~/.local/share/agentbak and ~/.config/agentbak).
export XDG_DATA_HOME="$work/keys" XDG_CONFIG_HOME="$work/keys"

openai="sk-proj-$(rand 48)"; github="ghp_$(rand 36)"; anthropic="sk-ant-api03-$(rand 93)"
aws_id="AKIA$(rand 16 | tr 'a-z0189' 'A-Z2345')"; aws_secret="$(rand 40)"; slack="xoxb-$(rand 12)-$(rand 13)-$(rand 24)"
smtp="$(rand 8)-$(rand 8)-$(rand 6)"; session="sess_$(rand 32)"
fill() {
    sed -e "s#@OPENAI@#$openai#" -e "s#@GITHUB@#$github#" -e "s#@ANTHROPIC@#$anthropic#" \
        -e "s#@AWS_ID@#$aws_id#" -e "s#@AWS_SECRET@#$aws_secret#" -e "s#@SLACK@#$slack#" \
        -e "s#@SMTP@#$smtp#" -e "s#@SESSION@#$session#" "$1" > "$2"
    rm "$1"
}
fill state/config/credentials.json.tmpl state/config/credentials.json
fill state/dot-env.tmpl state/.env
fill state/config.yaml.tmpl state/config.yaml
fill state/settings.toml.tmpl state/settings.toml
fill state/tools/mail.ini.tmpl state/tools/mail.ini
fill state/logs/agent.log.tmpl state/logs/agent.log
mkdir -p state/keys
{ echo "-----BEGIN PRIVATE KEY-----"; head -c 1190 /dev/urandom | base64 -w 64; echo "-----END PRIVATE KEY-----"; } \
    > state/keys/identity.pem
chmod 600 state/keys/identity.pem
secrets=("$openai" "$github" "$anthropic" "$aws_id" "$aws_secret" "$slack" "$smtp" "$session"
         "$(sed -n 2p state/keys/identity.pem)")

step() { printf '\n== %s\n' "$*" >&2; }
step "init --discover --import: find the secrets, write agentbak.json, fill the local store"
"$bin" init --discover --import
head -c 2000 agentbak.json

step "snapshot (the cron job)"
id="$("$bin" snapshot)"
echo "snapshot $id"
"$bin" list

step "the repository holds handles, not keys (export to one archive; stock zstd + tar)"
"$bin" export "$id" -o "$id.tar.zst"
zstd -dc "$id.tar.zst" | tar -xO state/config/credentials.json
for s in "${secrets[@]}"; do
    # A pack is zstd frames end to end: `zstd -d` reads it whole.
    if zstd -dc "$id.tar.zst" backups/packs/*/* | grep -a -q -F -e "$s"; then
        echo "a secret value is in the repository or the archive" >&2; exit 1
    fi
done
echo "none of the ${#secrets[@]} planted secrets is in the repository or the exported archive"

step "a second snapshot stores only what changed"
echo "- one more thing learned today" >> state/memory/notes.md
id="$("$bin" snapshot)"
"$bin" list

step "verify (the audit)"
"$bin" verify "$id"

step "restore --rehydrate into a new folder (the migration)"
"$bin" restore "$id" --target restored --rehydrate
diff -r -x cache state restored && echo "restored state is identical to the original (the cache is excluded)"

step "rotate the OpenAI key in the store; restore again"
rotated="sk-proj-$(rand 48)"
printf '%s' "$rotated" | "$bin" secrets set 'local:agents/kevin/config/credentials#openai_api_key'
"$bin" restore "$id" --target restored-rotated --rehydrate
grep -q "$rotated" restored-rotated/config/credentials.json && ! grep -rqF "$openai" restored-rotated \
    && echo "the restored agent has the rotated key, and the old one is nowhere"
printf '\nAll done in %s\n' "$work" >&2
