#!/usr/bin/env bash
# Side-by-side benchmark of executor and the reference exec-server
# (`codex exec-server --listen stdio` from npm @openai/codex@0.169.0), plus bare
# bwrap, on this machine in one run. Sandboxed workloads (sandbox-true, fs-read,
# fs-meta) run against both servers; bare bwrap with the executor's workspace-write
# mounts runs inside sandbox-true, alternating with the sandboxed starts. See docs/benchmarks.md.
#
# Not part of the test command and not run by CI. Takes about two minutes once built.
#
#   bash ci/bench.sh [EXEC-BENCH OPTIONS...]     e.g. bash ci/bench.sh --true-runs 500
#
# Environment:
#   CARGO_TARGET_DIR   where to build (default: ./target)
#   BENCH_OUT          where the JSON reports go (default: $CARGO_TARGET_DIR/bench/<time>)
#   BENCH_REFERENCE    path of a reference `codex` binary to use instead of the npm one
#   BENCH_SKIP_BUILD=1 use the binaries already built
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
ref_version=0.169.0
cache=${XDG_CACHE_HOME:-$HOME/.cache}/executor-bench
ref_dir=$cache/codex
out=${BENCH_OUT:-$target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
# .cargo/config.toml builds for the host tuple explicitly: binaries are under target/<host-tuple>/.
host=$(rustc -vV | sed -n 's/^host: //p')
bench=$target/$host/release/exec-bench
executor=$target/$host/release/executor

note() { printf '\n== %s\n' "$*" >&2; }
mkdir -p "$out"

# --- build ------------------------------------------------------------------
executor_ok=1
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    note "building exec-bench (release)"
    CARGO_TARGET_DIR=$target cargo build --release -p exec-bench --bin exec-bench
    note "building executor (release)"
    if ! CARGO_TARGET_DIR=$target cargo build --release -p executor; then
        note "executor did not build: its column will read 'pending'"
        executor_ok=0
    fi
fi
[[ -x $bench ]] || { echo "bench.sh: $bench missing (build failed?)" >&2; exit 1; }
[[ -x $executor ]] || executor_ok=0

# --- reference ----------------------------------------------------------------
# The npm package is a node launcher (bin/codex.js) that spawns the native binary
# with stdio inherited. The main column uses the native binary, so both sides are
# one native process; a second, shorter run goes through the launcher, as a user
# of the npm package would start it.
ref_launcher=""
ref_native=${BENCH_REFERENCE:-}
if [[ -z $ref_native ]]; then
    if [[ ! -x $ref_dir/node_modules/.bin/codex ]]; then
        if command -v npm >/dev/null 2>&1; then
            note "installing @openai/codex@$ref_version into $ref_dir"
            mkdir -p "$ref_dir"
            npm install --no-audit --no-fund --prefix "$ref_dir" "@openai/codex@$ref_version" >&2 ||
                note "npm install failed (no registry?): benchmarking executor only"
        else
            note "npm not found: benchmarking executor only"
        fi
    fi
    if [[ -x $ref_dir/node_modules/.bin/codex ]]; then
        ref_launcher=$ref_dir/node_modules/.bin/codex
        installed=$(node -p "require('$ref_dir/node_modules/@openai/codex/package.json').version" 2>/dev/null || echo "?")
        [[ $installed == "$ref_version" ]] || note "warning: cached reference is $installed, not $ref_version (remove $ref_dir to reinstall)"
        ref_native=$(find "$ref_dir/node_modules/@openai" -path '*/vendor/*/bin/codex' -type f 2>/dev/null | head -n 1)
    fi
fi

# --- runs -------------------------------------------------------------------
# exec-bench exits non-zero when a workload fails but still writes its report; keep
# going so the table shows what did work.
run() {
    local name=$1; shift
    note "exec-bench: $name"
    "$bench" --json-out "$out/$name.json" "$@" >&2 || note "exec-bench reported errors for $name (see above)"
}

# Every server workload, sandboxed ones included; a later --only in "$@" overrides it.
all=init,true,stream,rss,sandbox-true,sandbox-roots,fs-read,fs-meta,http
# The executor is told to use the system bwrap (/usr/bin/bwrap), the same one the bare
# bwrap runs use; the reference takes bwrap from PATH.
executor_args=(--listen stdio --bwrap system)

reports=()
if [[ -n $ref_native ]]; then
    run reference --label reference --only "$all" "$@" -- "$ref_native" exec-server --listen stdio
    reports+=("$out/reference.json")
fi

if [[ $executor_ok == 1 ]] &&
    printf '%s\n' '{"id":1,"method":"initialize","params":{"clientName":"bench.sh"}}' |
    timeout 10 "$executor" "${executor_args[@]}" 2>/dev/null | grep -q '"sessionId"'; then
    run executor --label executor --only "$all" "$@" -- "$executor" "${executor_args[@]}"
else
    note "executor is not answering initialize yet: its column reads 'pending'"
    printf '{"label":"executor","pending":true,"workloads":{},"errors":{}}\n' >"$out/executor.json"
fi
reports+=("$out/executor.json")

if [[ -n $ref_launcher ]]; then
    run reference-npm --label reference-npm --only init,rss "$@" -- "$ref_launcher" exec-server --listen stdio
    reports+=("$out/reference-npm.json")
fi

if [[ -x /usr/bin/bwrap ]]; then
    # The workload list comes last: a caller's --only must not turn this into a server run.
    run bare-bwrap --label bare-bwrap "$@" --only bare-bwrap
    reports+=("$out/bare-bwrap.json")
fi

# --- comparison -------------------------------------------------------------
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (work tree has uncommitted changes)" || true)
{
    echo
    echo "exec-bench comparison — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty"
    echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "reports: $out"
    echo
    "$bench" compare "${reports[@]}"
} | tee "$out/comparison.txt"
"$bench" compare --markdown "${reports[@]}" >"$out/comparison.md"

# --- websocket service budgets (issue 16) ------------------------------------
# wss handshake + initialize, streaming over wss, and the audit log's cost on sandboxed
# `true` (docs/benchmarks-ws.md). Skipped with BENCH_WS_SERVICE=0.
if [[ ${BENCH_WS_SERVICE:-1} != 0 && $executor_ok == 1 ]]; then
    ws_bench=$target/$host/release/ws-service-bench
    if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
        note "building ws-service-bench (release)"
        CARGO_TARGET_DIR=$target cargo build --release -p exec-bench --bin ws-service-bench
    fi
    note "ws-service-bench"
    EXECUTOR_BIN=$executor "$ws_bench" 200 | tee "$out/ws-service.txt"
fi
