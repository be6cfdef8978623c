//! Command lines of the documented deployments. The tests run exactly these, and check that
//! the docs show the same lines (tests/tests/docs.rs), so the docs cannot drift.

/// `ssh ... DESTINATION EXECUTOR --listen stdio`: the SSH deployment of docs/deploy-ssh.md.
///
/// `-T`: no terminal (stdout must carry only protocol lines); `BatchMode=yes`: never prompt
/// (a prompt would hang the client); host keys are checked against `known_hosts`.
pub fn ssh_argv(port: &str, key: &str, known_hosts: &str, destination: &str, executor: &str) -> Vec<String> {
    [
        "ssh",
        "-T",
        "-p",
        port,
        "-i",
        key,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        &format!("UserKnownHostsFile={known_hosts}"),
        destination,
        executor,
        "--listen",
        "stdio",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The values docs/deploy-ssh.md and docs/codex.md use in their examples.
pub mod doc_example {
    pub const PORT: &str = "22";
    pub const KEY: &str = "/home/dev/.ssh/id_ed25519";
    pub const KNOWN_HOSTS: &str = "/home/dev/.ssh/known_hosts";
    pub const DESTINATION: &str = "executor@build-host.example";
    pub const EXECUTOR: &str = "/usr/local/bin/executor";
}
