#!/usr/bin/env bash
# Installs what building and serving executor needs on a fresh Debian/Ubuntu machine
# (ci/serve.sh runs it); what only the tests need is in ci/setup-tests.sh.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

need_packages=()
have() { command -v "$1" >/dev/null 2>&1; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# bubblewrap: the system launcher; libcap-dev + pkg-config + a C compiler: the bundled
# bwrap is compiled from source at build time.
for pkg in bubblewrap libcap-dev pkg-config gcc libc6-dev; do
    pkg_installed "$pkg" || need_packages+=("$pkg")
done

if ((${#need_packages[@]})); then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        have sudo || { echo "ci/setup.sh: need root or sudo to install: ${need_packages[*]}" >&2; exit 1; }
        SUDO=sudo
    fi
    echo "ci/setup.sh: installing ${need_packages[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

if ! have cargo; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! have cargo; then
    cat >&2 <<'MSG'
ci/setup.sh: no Rust toolchain found. Install one (Rust 1.91 or newer), for example with
rustup: https://rustup.rs, then run this command again.
MSG
    exit 1
fi
# .cargo/config.toml builds for `host-tuple`, which cargo understands from 1.91 on; an older
# cargo fails later with a confusing "target not found".
cargo_minor=$(cargo --version | sed -n 's/^cargo 1\.\([0-9]*\)\..*/\1/p')
if [ -n "$cargo_minor" ] && [ "$cargo_minor" -lt 91 ]; then
    echo "ci/setup.sh: $(cargo --version) is too old: Rust 1.91 or newer is needed (rustup update)" >&2
    exit 1
fi
