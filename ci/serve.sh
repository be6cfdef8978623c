#!/usr/bin/env bash
# Installs what the build needs, builds executor in release mode and runs it.
# Arguments are passed to executor (default: --listen stdio).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh >&2
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p executor >&2
# .cargo/config.toml builds for the host tuple explicitly (static-pie), so the binary
# lives under target/<host-tuple>/.
host=$(rustc -vV | sed -n 's/^host: //p')
if [ "$#" -eq 0 ]; then set -- --listen stdio; fi
exec "./target/$host/release/executor" "$@"
