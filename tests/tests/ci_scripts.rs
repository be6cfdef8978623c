//! The CI scripts keep serving and testing apart: `ci/serve.sh` installs only what the
//! build and the server need (no test accounts, no sshd), `ci/test.sh` sets up the rest
//! and ends with the fresh-machine check of the README's start command.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script(name: &str) -> String {
    let path = repo().join("ci").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Commands a script runs (comments and blank lines left out).
fn commands(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

#[test]
fn serve_sets_up_only_the_build() {
    let serve = script("serve.sh");
    let serve = commands(&serve);
    assert!(serve.iter().any(|l| l.starts_with("bash ci/setup.sh")), "{serve:?}");
    assert!(!serve.iter().any(|l| l.contains("setup-tests") || l.contains("setup.d")), "{serve:?}");

    // What ci/setup.sh really runs on this (already set-up) host: nothing of the tests.
    let trace = Command::new("bash").arg("-x").arg(repo().join("ci/setup.sh")).output().expect("bash -x ci/setup.sh");
    let trace_text = String::from_utf8_lossy(&trace.stderr);
    assert!(trace.status.success(), "{trace_text}");
    for test_only in ["setup.d", "useradd", "executor-test", "executor-ssh", "sshd", "openssh"] {
        assert!(!trace_text.contains(test_only), "ci/setup.sh ran {test_only:?}:\n{trace_text}");
    }
}

#[test]
fn test_sets_up_the_tests_and_ends_with_the_fresh_machine_check() {
    let test = script("test.sh");
    let test = commands(&test);
    assert!(test.contains(&"bash ci/setup-tests.sh"), "{test:?}");
    let gates = ["cargo fmt --all --check", "cargo clippy --workspace --all-targets --locked -- -D warnings"];
    let first_test = test.iter().position(|l| l.starts_with("cargo test")).expect("ci/test.sh runs cargo test");
    for gate in gates {
        let at = test.iter().position(|l| *l == gate).unwrap_or_else(|| panic!("ci/test.sh lacks the gate {gate:?}"));
        assert!(at < first_test, "{gate:?} runs before the tests");
    }
    assert_eq!(test.last(), Some(&"bash ci/fresh-machine.sh"), "last, after every unit and integration test");
    let setup_tests = script("setup-tests.sh");
    assert!(setup_tests.contains("setup.d/*.sh") && setup_tests.contains("bash setup.sh"), "{setup_tests}");
    let fresh = script("fresh-machine.sh");
    for needed in ["CARGO_HOME=", "bash ci/serve.sh --listen stdio", "\"sessionId\""] {
        assert!(fresh.contains(needed), "ci/fresh-machine.sh lacks {needed:?}");
    }
}
