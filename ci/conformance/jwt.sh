#!/usr/bin/env bash
# Conformance check (not part of ci/test.sh): the accept/refuse decisions and the 401
# texts of `--ws-auth signed-bearer-token` compared with the reference server
# (`codex exec-server` from npm @openai/codex@0.169.0) on the same tokens.
#
# Both servers get the same secret, issuer and audience; every token of the matrix is
# sent to both as `Authorization: Bearer` on a websocket upgrade. The one deliberate
# difference (an `iat` in the future beyond the skew: the reference accepts it, executor
# refuses it, see docs/security-model.md) is expected and reported as such; any other
# difference fails the script.
#
#   CONFORMANCE_REFERENCE  path of a reference `codex` binary instead of the npm one
#   EXECUTOR_BIN           executor binary [default: target/<host>/debug/executor]
# Needs python3 (the tokens are made with its standard library) and, without
# CONFORMANCE_REFERENCE, npm.
set -euo pipefail
cd "$(dirname "$0")/../.."
ref_version=0.169.0
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

executor=${EXECUTOR_BIN:-$(ls target/*/debug/executor 2>/dev/null | head -n 1)}
[[ -x $executor ]] || { echo "jwt.sh: build executor first (cargo build -p executor)" >&2; exit 1; }
reference=${CONFORMANCE_REFERENCE:-}
if [[ -z $reference ]]; then
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/executor-conformance/codex
    if [[ ! -x $cache/node_modules/.bin/codex ]]; then
        npm install --no-audit --no-fund --prefix "$cache" "@openai/codex@$ref_version" >&2
    fi
    reference=$cache/node_modules/.bin/codex
fi

secret=$work/secret
head -c 48 /dev/urandom | base64 | tr -d '\n' >"$secret"
chmod 600 "$secret"
flags=(--listen ws://127.0.0.1:0 --ws-auth signed-bearer-token --ws-shared-secret-file "$secret"
    --ws-issuer fleet --ws-audience executor)

start() { # name command...: starts a server in this shell (so that the EXIT trap can
    # stop it) and sets $port to the port it printed
    local name=$1
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    for _ in $(seq 100); do
        if grep -q '^ws://' "$work/$name.out" 2>/dev/null; then
            port=$(sed -n '1s/.*://p' "$work/$name.out")
            return
        fi
        sleep 0.1
    done
    echo "jwt.sh: $name printed no URL: $(cat "$work/$name.err")" >&2
    exit 1
}
start reference "$reference" exec-server "${flags[@]}"
ref_port=$port
start executor "$executor" "${flags[@]}"
our_port=$port

python3 - "$secret" "$ref_port" "$our_port" <<'EOF'
import base64, hashlib, hmac, json, socket, sys, time

secret = open(sys.argv[1], "rb").read().strip()
ref_port, our_port = int(sys.argv[2]), int(sys.argv[3])
now = int(time.time())

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def token(claims, header=None, key=secret, digest=hashlib.sha256, signature=True):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if not signature:
        return signing_input + "."
    return signing_input + "." + b64(hmac.new(key, signing_input.encode(), digest).digest())

base = {"sub": "ci", "iss": "fleet", "aud": "executor", "exp": now + 300, "iat": now}
def claims(**changes):
    c = dict(base)
    for name, value in changes.items():
        if value is None:
            c.pop(name, None)
        else:
            c[name] = value
    return c

cases = {
    "valid": token(claims()),
    "expired": token(claims(exp=now - 120)),
    "expired within skew": token(claims(exp=now - 10)),
    "no exp": token(claims(exp=None)),
    "nbf in the future": token(claims(nbf=now + 120)),
    "nbf within skew": token(claims(nbf=now + 10)),
    "iat in the future": token(claims(iat=now + 120)),
    "wrong iss": token(claims(iss="elsewhere")),
    "no iss": token(claims(iss=None)),
    "wrong aud": token(claims(aud="other")),
    "no aud": token(claims(aud=None)),
    "aud list naming us": token(claims(aud=["x", "executor"])),
    "wrong signature": token(claims(), key=b"k" * 40),
    "alg none": token(claims(), header={"alg": "none", "typ": "JWT"}, signature=False),
    "RS256 header, HS256 key": token(claims(), header={"alg": "RS256", "typ": "JWT"}),
    "HS512": token(claims(), header={"alg": "HS512", "typ": "JWT"}, digest=hashlib.sha512),
    "garbage": "not-a-jwt",
}
expected_differences = {"iat in the future"}

def decide(port, bearer):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Authorization: Bearer %s\r\n\r\n" % bearer).encode())
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data:
                break
    except socket.timeout:
        pass
    s.close()
    text = data.decode(errors="replace")
    status = text.split(" ", 2)[1] if " " in text else "?"
    body = "" if status == "101" else text.split("\r\n\r\n", 1)[-1].strip()
    return status, body

failures = 0
for name, bearer in cases.items():
    ref, ours = decide(ref_port, bearer), decide(our_port, bearer)
    if ref == ours:
        verdict = "same"
    elif name in expected_differences:
        verdict = "differs (deliberate)"
    else:
        verdict = "DIFFERS"
        failures += 1
    print(f"{name:26} reference={ref[0]} {ref[1]!r:36} executor={ours[0]} {ours[1]!r:36} {verdict}")
print(f"{len(cases) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
EOF
