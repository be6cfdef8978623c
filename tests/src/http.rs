//! Real HTTP servers for the `http/request` tests: Python's http.server (HTTP/1.1, and
//! HTTPS with a private CA made by openssl here) and an MCP server from PyPI's `mcp`,
//! all installed by ci/setup.d/http-servers.sh. A missing piece fails the test, loudly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::TIMEOUT;

/// The venv made by ci/setup.d/http-servers.sh; `EXECUTOR_TEST_PYTHON` overrides it.
pub const VENV_PYTHON: &str = "/opt/executor-tests/http-venv/bin/python3";

pub fn python() -> PathBuf {
    let path = std::env::var_os("EXECUTOR_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(VENV_PYTHON));
    assert!(path.exists(), "{} is missing: run `bash ci/setup-tests.sh` (ci/setup.d/http-servers.sh installs it)", path.display());
    path
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A server process that printed `PORT <n>`; killed when dropped.
pub struct PyServer {
    child: Child,
    pub port: u16,
}

impl PyServer {
    /// Runs `python3 SCRIPT ARGS` and waits for its `PORT <n>` line.
    pub fn start(script: &str, args: &[&str]) -> Self {
        let mut child = Command::new(python())
            .arg(fixture(script))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("PORT ").and_then(|p| p.trim().parse::<u16>().ok()) {
                    let _ = tx.send(port);
                    return;
                }
            }
        });
        let port = match rx.recv_timeout(TIMEOUT) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("{script} {args:?} did not print its port within {TIMEOUT:?}");
            }
        };
        Self { child, port }
    }

    /// `http_server.py` on `host` (plain HTTP).
    pub fn http(host: &str) -> Self {
        Self::start("http_server.py", &["--host", host])
    }

    /// `h2_server.py` (hypercorn: HTTP/2 and HTTP/1.1 over TLS) on 127.0.0.1.
    pub fn h2(ca: &TestCa) -> Self {
        let (cert, key) = (ca.dir.join("server.pem"), ca.dir.join("server.key"));
        Self::start("h2_server.py", &["--cert", &cert.to_string_lossy(), "--key", &key.to_string_lossy()])
    }

    /// `http_server.py` on 127.0.0.1 with TLS, its certificate signed by `ca`.
    pub fn https(ca: &TestCa) -> Self {
        let (cert, key) = (ca.dir.join("server.pem"), ca.dir.join("server.key"));
        Self::start("http_server.py", &["--cert", &cert.to_string_lossy(), "--key", &key.to_string_lossy()])
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private CA and a server certificate for `localhost` and 127.0.0.1, made by openssl.
pub struct TestCa {
    pub dir: PathBuf,
    _keep: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(&dir).output().unwrap_or_else(|e| panic!("openssl: {e}"));
            assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run(&[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=executor test CA"]].concat());
        run(&[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat());
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Self { dir, _keep: tmp }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
