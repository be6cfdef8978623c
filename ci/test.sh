#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-tests.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Integration tests drive the real binary: build it before the tests run.
cargo build --workspace --all-targets --locked
# Gates before the tests: one formatting (rustfmt.toml) and no lint warnings.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    echo "ci/test.sh: rustfmt and clippy are needed (rustup component add rustfmt clippy)" >&2
    exit 1
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
# The escape suites once more with each launcher forced: the probed system bwrap (Debian's
# 0.8.0, without --argv0) and the bundled bwrap run from its verified memfd.
for launcher in system bundled; do
    echo "== sandbox escape suites with --bwrap $launcher" >&2
    EXECUTOR_TEST_BWRAP=$launcher cargo test --locked -p executor-tests --test sandbox_escape --test fs_escape --test fs_fresh_view --test cross_sandbox --test sandbox_roots
done
# Last, so that a failing unit or integration test is reported first: the README's start
# command on a fresh clone with an empty cargo registry (a release build, a few minutes).
bash ci/fresh-machine.sh
