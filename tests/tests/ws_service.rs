//! The websocket service for fleets (issue 16): signed bearer tokens (HS256 JWTs), the
//! `?token=` form, TLS and mutual TLS with a SIGHUP reload, connection limits and the
//! idle timeout — all over the real transport of the real binary.

use executor_tests::RpcClient as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use executor_tests::pki::Ca;
use executor_tests::ws::{http_get, https_get, tls_client_config, WsClient, WsServer, UPGRADE_HEADERS};
use executor_tests::{executor_bin, sh, TIMEOUT};
use hmac::{Hmac, Mac as _};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!!";
const TOKEN: &str = "driver-token-123";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64
}

/// A secret file the server accepts: absolute, mode 0600, with a trailing newline (trimmed).
fn secret_file(dir: &Path) -> String {
    let path = dir.join("jwt-secret");
    std::fs::write(&path, format!("{SECRET}\n")).expect("write secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.to_str().expect("utf8").to_owned()
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).expect("encode")
}

/// A token with any header, MAC'd with HMAC-SHA256 under `secret` whatever the header says
/// (what an attacker does when hoping the server trusts the header's `alg`).
fn forged(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn upgrade_with(addr: &str, authorization: &str) -> (u16, String) {
    let mut headers = UPGRADE_HEADERS.to_vec();
    headers.push(("Authorization", authorization));
    http_get(addr, "/", &headers)
}

#[test]
fn signed_bearer_token_matrix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path());
    let server = WsServer::start(&[
        "--ws-auth",
        "signed-bearer-token",
        "--ws-shared-secret-file",
        &secret,
        "--ws-issuer",
        "fleet",
        "--ws-audience",
        "executor",
    ]);
    let addr = server.addr();
    let t = now();
    let valid = json!({"sub": "ci-job-7", "iss": "fleet", "aud": "executor", "exp": t + 300, "iat": t});
    let with = |changes: &[(&str, Value)]| {
        let mut claims = valid.clone();
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().expect("object").remove(*name);
            } else {
                claims[*name] = value.clone();
            }
        }
        claims
    };
    let key = SECRET.as_bytes();
    let refused: Vec<(&str, String, &str)> = vec![
        ("expired", hs256(&with(&[("exp", json!(t - 120))]), key), "expired websocket jwt"),
        ("no exp", hs256(&with(&[("exp", Value::Null)]), key), "invalid websocket jwt"),
        ("not yet valid", hs256(&with(&[("nbf", json!(t + 120))]), key), "websocket jwt is not valid yet"),
        ("issued in the future", hs256(&with(&[("iat", json!(t + 120))]), key), "websocket jwt is not valid yet"),
        ("wrong iss", hs256(&with(&[("iss", json!("elsewhere"))]), key), "websocket jwt issuer mismatch"),
        ("no iss", hs256(&with(&[("iss", Value::Null)]), key), "websocket jwt issuer mismatch"),
        ("wrong aud", hs256(&with(&[("aud", json!("someone-else"))]), key), "websocket jwt audience mismatch"),
        ("wrong signature", hs256(&valid, b"another-secret-that-is-32-bytes-long!"), "invalid websocket jwt"),
        (
            "alg none",
            forged(&json!({"alg": "none", "typ": "JWT"}), &valid, key).rsplit_once('.').map(|(si, _)| format!("{si}.")).expect("dot"),
            "invalid websocket jwt",
        ),
        ("alg none, signed", forged(&json!({"alg": "none", "typ": "JWT"}), &valid, key), "invalid websocket jwt"),
        ("RS256 header, HS256 key", forged(&json!({"alg": "RS256", "typ": "JWT"}), &valid, key), "invalid websocket jwt"),
        ("HS512", encode(&Header::new(Algorithm::HS512), &valid, &EncodingKey::from_secret(key)).expect("encode"), "invalid websocket jwt"),
        ("garbage", "not-a-jwt".to_owned(), "invalid websocket jwt"),
    ];
    for (case, token, body) in &refused {
        assert_eq!(upgrade_with(addr, &format!("Bearer {token}")), (401, (*body).to_owned()), "{case}");
    }
    // The forgery helper itself is sound: with an HS256 header it makes a token that passes.
    let accepted: Vec<(&str, String)> = vec![
        ("valid", hs256(&valid, key)),
        ("forged helper with HS256 header", forged(&json!({"alg": "HS256", "typ": "JWT"}), &valid, key)),
        ("expired within the skew", hs256(&with(&[("exp", json!(t - 10))]), key)),
        ("nbf within the skew", hs256(&with(&[("nbf", json!(t + 10))]), key)),
        ("aud list naming us", hs256(&with(&[("aud", json!(["other", "executor"]))]), key)),
    ];
    for (case, token) in &accepted {
        let bearer = format!("Bearer {token}");
        let mut client = WsClient::connect(&server.url, &[("Authorization", &bearer)]).unwrap_or_else(|e| panic!("{case}: {e}"));
        client.handshake();
        assert_eq!(client.run("a", sh("echo jwt")).stdout_str(), "jwt\n", "{case}");
    }
    assert_eq!(http_get(addr, "/readyz", &[]), (200, "ready".into()), "readyz needs no token");
    assert_eq!(http_get(addr, "/", UPGRADE_HEADERS), (401, "missing websocket bearer token".into()));
}

#[test]
fn clock_skew_flag_and_unconfigured_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path());
    let server =
        WsServer::start(&["--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", &secret, "--ws-max-clock-skew-seconds", "0"]);
    let t = now();
    let key = SECRET.as_bytes();
    let expired = hs256(&json!({"exp": t - 10}), key);
    assert_eq!(upgrade_with(server.addr(), &format!("Bearer {expired}")), (401, "expired websocket jwt".into()));
    // Neither iss nor aud configured: whatever the token says about them is not checked.
    let any = hs256(&json!({"exp": t + 60, "iss": "anyone", "aud": "anything"}), key);
    let bearer = format!("Bearer {any}");
    let mut client = WsClient::connect(&server.url, &[("Authorization", &bearer)]).expect("accepted");
    client.handshake();
}

fn run_expecting_usage_error(args: &[&str], expected: &str) {
    let output =
        Command::new(executor_bin()).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run executor: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a usage error: {args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: stderr {stderr:?} lacks {expected:?}");
    assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
}

#[test]
fn secret_file_and_flag_errors_refuse_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = secret_file(dir.path());
    let open = dir.path().join("open-secret");
    std::fs::write(&open, SECRET).expect("write");
    let short = dir.path().join("short-secret");
    std::fs::write(&short, "too short\n").expect("write");
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (open_s, short_s) = (open.to_str().expect("utf8"), short.to_str().expect("utf8"));
    let jwt = |file: &str| {
        vec!["--listen", "ws://127.0.0.1:0", "--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", file]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for mode in [0o640, 0o604, 0o660, 0o620] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let args = jwt(open_s);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_expecting_usage_error(&args, "accessible by group or others");
    }
    let cases: Vec<(Vec<String>, &str)> = vec![
        (jwt("jwt-secret"), "must be an absolute path"),
        (jwt(short_s), "at least 32 bytes"),
        (jwt(&dir.path().join("missing").display().to_string()), "cannot read"),
        (
            ["--listen", "ws://127.0.0.1:0", "--ws-auth", "signed-bearer-token"].map(str::to_owned).to_vec(),
            "`--ws-shared-secret-file` is required",
        ),
        (
            ["--listen", "ws://127.0.0.1:0", "--ws-shared-secret-file", good.as_str()].map(str::to_owned).to_vec(),
            "require --ws-auth signed-bearer-token",
        ),
        (["--listen", "ws://127.0.0.1:0", "--ws-issuer", "x"].map(str::to_owned).to_vec(), "require --ws-auth signed-bearer-token"),
        (
            ["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token", "--ws-token-sha256", &"0".repeat(64), "--ws-audience", "a"]
                .map(str::to_owned)
                .to_vec(),
            "require --ws-auth signed-bearer-token",
        ),
        (
            ["--listen", "stdio", "--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", good.as_str()].map(str::to_owned).to_vec(),
            "not stdio",
        ),
        (
            ["--listen", "ws://127.0.0.1:0", "--ws-allow-query-token"].map(str::to_owned).to_vec(),
            "--ws-allow-query-token requires --ws-auth",
        ),
    ];
    for (args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_expecting_usage_error(&args, expected);
    }
}

#[test]
fn query_token_only_when_allowed_and_never_logged() {
    let token_sha256 = "1ad7841e6c92c99fa7689513fea063ad0006a8d67ba1f68c7d54e4ffee59e784";
    let start = |extra: &[&str]| {
        let mut command = Command::new(executor_bin());
        command
            .args(["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token", "--ws-token-sha256", token_sha256])
            .args(extra)
            .env("EXECUTOR_LOG", "debug");
        WsServer::spawn_capturing_stderr(command)
    };
    let allowed = start(&["--ws-allow-query-token"]);
    let mut client = WsClient::connect(&format!("{}/?token={TOKEN}", allowed.url), &[]).expect("query token accepted");
    client.handshake();
    assert_eq!(client.run("q", sh("echo via-query")).stdout_str(), "via-query\n");
    let wrong = WsClient::connect(&format!("{}/?token=wrong-{TOKEN}", allowed.url), &[]).err().expect("wrong query token refused");
    assert!(matches!(&wrong, tungstenite::Error::Http(r) if r.status() == 401), "{wrong}");
    // The header wins over the query when both are given.
    let both = WsClient::connect(&format!("{}/?token={TOKEN}", allowed.url), &[("Authorization", "Bearer wrong")]).err();
    assert!(matches!(&both, Some(tungstenite::Error::Http(r)) if r.status() == 401), "{both:?}");

    let default = start(&[]);
    assert_eq!(http_get(default.addr(), &format!("/?token={TOKEN}"), UPGRADE_HEADERS), (401, "missing websocket bearer token".into()));
    let header = WsClient::connect(&default.url, &[("Authorization", &format!("Bearer {TOKEN}"))]);
    assert!(header.is_ok(), "the header still works");

    for server in [&allowed, &default] {
        let stderr = server.stderr_containing("websocket upgrade refused");
        assert!(stderr.contains("websocket upgrade refused"), "the refusal is logged: {stderr}");
        assert!(!stderr.contains(TOKEN), "the token must never be logged: {stderr}");
    }
}

#[test]
fn wss_serves_websocket_and_readyz_on_one_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "one");
    let leaf = ca.server("server");
    let server = WsServer::start_tls(&leaf.cert, &leaf.key, &[]);
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let tls = tls_client_config(&ca.cert, None);
    assert_eq!(https_get(server.addr(), "/readyz", tls.clone()).expect("https"), (200, "ready".into()));
    let mut client = WsClient::connect_tls(&server.url, &[], tls).expect("wss connect");
    client.handshake();
    assert_eq!(client.run("t", sh("echo over-tls")).stdout_str(), "over-tls\n");
    // A plain ws:// client gets no websocket on the TLS port.
    let plain = WsClient::connect(&format!("ws://{}", server.addr()), &[]);
    assert!(plain.is_err(), "plain ws on a wss port must fail");
    // A client that does not trust the CA refuses the server.
    let stranger = Ca::new(dir.path(), "stranger");
    assert!(WsClient::connect_tls(&server.url, &[], tls_client_config(&stranger.cert, None)).is_err());
}

#[test]
fn wss_with_auth_needs_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "auth");
    let leaf = ca.server("server");
    let secret = secret_file(dir.path());
    let server = WsServer::start_tls(&leaf.cert, &leaf.key, &["--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", &secret]);
    let tls = tls_client_config(&ca.cert, None);
    let refused = WsClient::connect_tls(&server.url, &[], tls.clone()).err().expect("no token");
    assert!(matches!(&refused, tungstenite::Error::Http(r) if r.status() == 401), "{refused}");
    let bearer = format!("Bearer {}", hs256(&json!({"exp": now() + 60}), SECRET.as_bytes()));
    WsClient::connect_tls(&server.url, &[("Authorization", &bearer)], tls).expect("token over TLS").handshake();
}

#[test]
fn mutual_tls_accepts_only_clients_of_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "mtls");
    let leaf = ca.server("server");
    let client_cert = ca.client("client");
    let other = Ca::new(dir.path(), "other");
    let other_client = other.client("client");
    let ca_path = ca.cert.to_str().expect("utf8").to_owned();
    let audit_log = dir.path().join("audit.jsonl");
    let mut server =
        WsServer::start_tls(&leaf.cert, &leaf.key, &["--tls-client-ca", &ca_path, "--audit-log", audit_log.to_str().expect("utf8")]);

    let with_cert = tls_client_config(&ca.cert, Some((&client_cert.cert, &client_cert.key)));
    let mut client = WsClient::connect_tls(&server.url, &[], with_cert.clone()).expect("client with a certificate of the CA");
    client.handshake();
    assert_eq!(client.run("m", sh("echo mtls")).stdout_str(), "mtls\n");
    assert_eq!(https_get(server.addr(), "/readyz", with_cert).expect("readyz with cert"), (200, "ready".into()));

    let anonymous = WsClient::connect_tls(&server.url, &[], tls_client_config(&ca.cert, None));
    assert!(anonymous.is_err(), "a client without a certificate must be refused");
    let foreign = WsClient::connect_tls(&server.url, &[], tls_client_config(&ca.cert, Some((&other_client.cert, &other_client.key))));
    assert!(foreign.is_err(), "a client certificate of another CA must be refused");
    // The refusals did not hurt the connection that is up.
    assert_eq!(client.run("m2", sh("echo still")).stdout_str(), "still\n");

    // The audit trail names the client certificate of the accepted connection.
    drop(client);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid()), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    server.wait_exit();
    use rustls::pki_types::pem::PemObject as _;
    use sha2::Digest as _;
    let der = rustls::pki_types::CertificateDer::from_pem_file(&client_cert.cert).expect("client cert");
    let digest: String = sha2::Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02x}")).collect();
    let log = std::fs::read_to_string(&audit_log).expect("audit log");
    let accepted: Vec<Value> =
        log.lines().map(|l| serde_json::from_str::<Value>(l).expect("json")).filter(|r| r["event"] == "connection.accepted").collect();
    assert!(!accepted.is_empty(), "{log}");
    assert!(accepted.iter().all(|r| r["clientCertSha256"] == json!(digest) && r["tls"] == json!(true)), "{log}");
    // Both refused clients failed the handshake, and the trail says so.
    let refused = log.lines().filter(|l| l.contains("connection.refused") && l.contains("TLS handshake failed")).count();
    assert_eq!(refused, 2, "{log}");
}

#[test]
fn sighup_reloads_the_certificate_while_a_session_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Ca::new(dir.path(), "first");
    let second = Ca::new(dir.path(), "second");
    let (leaf1, leaf2) = (first.server("server"), second.server("server"));
    let (cert, key) = (dir.path().join("live-cert.pem"), dir.path().join("live-key.pem"));
    std::fs::copy(&leaf1.cert, &cert).expect("copy");
    std::fs::copy(&leaf1.key, &key).expect("copy");
    let server = WsServer::start_tls(&cert, &key, &["--ws-idle-timeout", "600"]);
    let (trust1, trust2) = (tls_client_config(&first.cert, None), tls_client_config(&second.cert, None));

    let mut streaming = WsClient::connect_tls(&server.url, &[], trust1.clone()).expect("connect with the first cert");
    streaming.handshake();
    streaming.call(
        "process/start",
        json!({"processId": "ticker", "argv": ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo tick$i; i=$((i+1)); sleep 0.02; done"],
               "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let first_output = streaming.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "ticker");
    assert!(first_output["params"]["chunk"].is_string());

    std::fs::copy(&leaf2.cert, &cert).expect("copy");
    std::fs::copy(&leaf2.key, &key).expect("copy");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid()), nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    let log = server.stderr_containing("TLS certificate and key reloaded");
    assert!(log.contains("TLS certificate and key reloaded"), "{log}");

    let mut fresh = WsClient::connect_tls(&server.url, &[], trust2).expect("a new connection gets the new certificate");
    fresh.handshake();
    assert!(WsClient::connect_tls(&server.url, &[], trust1).is_err(), "the old certificate is no longer served");

    // The streaming connection lived through the reload and sees its process to the end.
    let events = streaming.events_until_closed("ticker");
    let output: String = events
        .iter()
        .filter(|e| e["method"] == "process/output")
        .map(|e| String::from_utf8_lossy(&executor_tests::unb64(e["params"]["chunk"].as_str().expect("chunk"))).into_owned())
        .collect();
    let first_chunk =
        String::from_utf8_lossy(&executor_tests::unb64(first_output["params"]["chunk"].as_str().expect("chunk"))).into_owned();
    let all = first_chunk + &output;
    assert!(all.starts_with("tick0\n") && all.ends_with("tick399\n"), "output lost across the reload: {all:?}");
    assert_eq!(all.lines().count(), 400);

    // A reload from broken files keeps serving the current certificate.
    std::fs::write(&cert, "not a certificate").expect("write");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid()), nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    let log = server.stderr_containing("TLS reload failed");
    assert!(log.contains("TLS reload failed"), "{log}");
    WsClient::connect_tls(&server.url, &[], tls_client_config(&second.cert, None)).expect("still serving").handshake();
}

#[test]
fn tls_startup_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "errs");
    let leaf = ca.server("server");
    let (cert, key) = (leaf.cert.to_str().expect("utf8"), leaf.key.to_str().expect("utf8"));
    run_expecting_usage_error(&["--listen", "wss://127.0.0.1:0"], "requires --tls-cert and --tls-key");
    run_expecting_usage_error(&["--listen", "wss://127.0.0.1:0", "--tls-cert", cert], "requires --tls-cert and --tls-key");
    run_expecting_usage_error(&["--listen", "ws://127.0.0.1:0", "--tls-cert", cert, "--tls-key", key], "require --listen wss://");
    run_expecting_usage_error(&["--listen", "wss://127.0.0.1:0", "--tls-cert", "/nonexistent.pem", "--tls-key", key], "/nonexistent.pem");
    // The CA's key does not belong to the server certificate.
    let wrong_key = dir.path().join("errs-ca.key");
    run_expecting_usage_error(
        &["--listen", "wss://127.0.0.1:0", "--tls-cert", cert, "--tls-key", wrong_key.to_str().expect("utf8")],
        "cannot be used together",
    );
}

#[test]
fn max_connections_refuses_with_1013_and_frees_slots() {
    let server = WsServer::start(&["--max-connections", "2"]);
    let mut a = server.ready();
    let _b = server.ready();
    let mut third = server.connect();
    assert!(third.wait_closed(), "the connection over the limit is closed");
    let (code, reason) = third.close_frame.clone().expect("a close frame");
    assert_eq!(code, 1013, "Try Again Later: {reason}");
    assert!(reason.contains("connection limit"), "{reason}");
    // Probes do not count against the limit.
    assert_eq!(http_get(server.addr(), "/readyz", &[]).0, 200);
    assert_eq!(a.run("x", sh("echo served")).stdout_str(), "served\n");
    drop(a);
    // Once a slot is free again a new client gets in (retried until the server noticed).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut client = server.connect();
        // A connection the server still counts as over the limit is closed: no reply.
        let id = client.send_request("initialize", json!({"clientName": "ws-tests"}));
        let reply = client.try_next_matching(&|m| m["id"] == json!(id), TIMEOUT);
        if reply.as_ref().is_some_and(|r| r.get("result").is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed: {reply:?} {:?}", client.close_frame);
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_connections_are_closed_with_4408() {
    let server = WsServer::start(&["--ws-idle-timeout", "1"]);
    let mut idle = server.ready();
    let mut busy = server.ready();
    // The busy client keeps talking for well over the timeout and stays connected.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert_eq!(busy.call("environment/status", json!({})), json!({"status": "ready"}));
        thread::sleep(Duration::from_millis(200));
    }
    assert!(idle.wait_closed(), "the idle connection is closed");
    let (code, reason) = idle.close_frame.clone().expect("a close frame");
    assert_eq!(code, 4408, "{reason}");
    assert!(reason.contains("idle"), "{reason}");
    assert_eq!(busy.call("environment/status", json!({})), json!({"status": "ready"}));
}

#[test]
fn per_peer_connection_limit_closes_with_1013() {
    let server = WsServer::start(&["--ws-max-connections-per-peer", "1"]);
    let mut first = server.ready();
    let mut second = server.connect();
    assert!(second.wait_closed(), "the second connection from 127.0.0.1 is closed");
    let (code, reason) = second.close_frame.clone().expect("a close frame");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("too many connections from this address"), "{reason}");
    assert_eq!(first.call("environment/status", json!({})), json!({"status": "ready"}));
}

#[test]
fn peer_connection_rate_answers_429_before_the_upgrade() {
    let server = WsServer::start(&["--ws-peer-connection-rate", "2"]);
    // Probes are not websocket connections and are not charged.
    for _ in 0..10 {
        assert_eq!(http_get(server.addr(), "/readyz", &[]).0, 200);
    }
    let attempts: Vec<_> = (0..6).map(|_| WsClient::connect(&server.url, &[])).collect();
    assert!(attempts[0].is_ok(), "the first connection is within the burst");
    let refused: Vec<_> = attempts
        .iter()
        .filter_map(|a| match a {
            Err(tungstenite::Error::Http(response)) => Some(response),
            _ => None,
        })
        .collect();
    assert!(!refused.is_empty(), "6 connections at once with a rate of 2/s: some must be refused");
    for response in &refused {
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    }
    assert!(attempts.iter().all(|a| a.is_ok() || matches!(a, Err(tungstenite::Error::Http(_)))), "only 429s");
}

#[test]
fn message_rate_limit_closes_with_1008() {
    let server = WsServer::start(&["--ws-max-messages-per-second", "5"]);
    let mut polite = server.ready();
    let mut flood = server.ready();
    for _ in 0..50 {
        flood.send_request("environment/status", json!({}));
    }
    assert!(flood.wait_closed(), "the flooding connection is closed");
    let (code, reason) = flood.close_frame.clone().expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("messages per second"), "{reason}");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(polite.call("environment/status", json!({})), json!({"status": "ready"}), "other connections are unaffected");
}
