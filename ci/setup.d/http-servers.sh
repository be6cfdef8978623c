#!/usr/bin/env bash
# Servers the http/request tests (tests/tests/http_request.rs, tests/tests/http_mcp.rs)
# drive through the executor: Python's own http.server and ssl (HTTP/1.1 and HTTPS with
# a private CA, made by openssl in the test), hypercorn (HTTP/2 over TLS), and a
# Streamable-HTTP MCP server from PyPI's `mcp` package, in a venv at a fixed path that
# the tests look for.
# Idempotent; needs root when something is missing.
set -euo pipefail
VENV=/opt/executor-tests/http-venv
# Pinned: the MCP test asserts on this version's wire behaviour; hypercorn serves HTTP/2.
MCP_VERSION=2.3.0
HYPERCORN_VERSION=0.18.0
missing=()
for pkg in python3 python3-venv openssl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "ci/setup.d/http-servers.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's interpreter, not whatever python3 is first on PATH: the venv must outlive
# per-user installs.
PY=/usr/bin/python3
wanted="import importlib.metadata as m; assert m.version('mcp') == '$MCP_VERSION'; assert m.version('hypercorn') == '$HYPERCORN_VERSION'"
if ! "$VENV/bin/python3" -c "$wanted" 2>/dev/null; then
    echo "ci/setup.d/http-servers.sh: creating $VENV with mcp==$MCP_VERSION hypercorn==$HYPERCORN_VERSION" >&2
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_VERSION" "hypercorn==$HYPERCORN_VERSION"
fi
