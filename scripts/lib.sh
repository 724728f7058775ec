# Shared by scripts/test and scripts/demo: installs what they need, idempotently.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\n==> %s\n' "$*"; }

# Never let a test or the demo reach the EC2 instance metadata service.
export AWS_EC2_METADATA_DISABLED=true

ensure_rust_tools() {
    command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        say "installing rustfmt and clippy"
        rustup component add rustfmt clippy
    fi
    if ! cargo nextest --version >/dev/null 2>&1; then
        say "installing cargo-nextest"
        cargo install --locked cargo-nextest
    fi
}

# A Python virtual environment in .venv with moto's server, pinned in
# scripts/requirements-dev.txt; reinstalled only when that file changes.
ensure_venv() {
    local req="$ROOT/scripts/requirements-dev.txt" stamp="$VENV/.requirements"
    if [ -x "$VENV/bin/moto_server" ] && cmp -s "$req" "$stamp"; then
        return
    fi
    say "installing the local AWS emulator (moto) into .venv"
    command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
}

# A TCP port on loopback that nobody listens on right now.
free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
