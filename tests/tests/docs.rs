//! The deployment docs show what the tests run: the SSH command line, the Dockerfile's
//! entrypoint, and environments.toml entries that work.

use std::path::PathBuf;
use std::process::Command;

use executor_tests::deploy::{doc_example, ssh_argv};
use executor_tests::ws::WsServer;
use executor_tests::{executor_bin, sh, Executor};
use serde_json::json;

fn doc(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The contents of every fenced block of `lang` in `text`.
fn fenced_blocks(text: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{lang}") => current = Some(String::new()),
            None => {}
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

fn doc_ssh_argv() -> Vec<String> {
    use doc_example::*;
    ssh_argv(PORT, KEY, KNOWN_HOSTS, DESTINATION, EXECUTOR)
}

#[test]
fn deploy_ssh_shows_the_command_line_the_ssh_test_runs() {
    let line = doc_ssh_argv().join(" ");
    let shell_blocks = fenced_blocks(&doc("deploy-ssh.md"), "sh");
    assert!(
        shell_blocks.iter().any(|b| b.lines().any(|l| l.trim() == line)),
        "docs/deploy-ssh.md must show exactly:\n{line}"
    );
}

#[test]
fn deploy_container_shows_the_dockerfile_entrypoint() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/container/Dockerfile");
    let dockerfile = std::fs::read_to_string(path).expect("Dockerfile");
    let entrypoint = dockerfile.lines().find_map(|l| l.strip_prefix("ENTRYPOINT ")).expect("ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    let line = argv.join(" ");
    assert!(doc("deploy-container.md").lines().any(|l| l.trim() == line), "docs/deploy-container.md must show the entrypoint:\n{line}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/container/README.md")).expect("README");
    assert!(readme.lines().any(|l| l.trim() == line), "ci/container/README.md must show the entrypoint:\n{line}");
}

#[test]
fn codex_environments_toml_examples_work() {
    let text = doc("codex.md");
    let mut environments = Vec::new();
    for block in fenced_blocks(&text, "toml") {
        let parsed: toml::Table = toml::from_str(&block).unwrap_or_else(|e| panic!("invalid TOML in docs/codex.md:\n{block}\n{e}"));
        let entries = parsed.get("environments").and_then(|v| v.as_array()).expect("[[environments]] entries");
        environments.extend(entries.iter().cloned());
    }
    let field = |env: &toml::Value, key: &str| env.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let args_of = |env: &toml::Value| -> Vec<String> {
        env.get("args")
            .and_then(|v| v.as_array())
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_owned())
            .collect()
    };
    assert_eq!(environments.len(), 3, "local, ssh and url entries");
    for env in &environments {
        assert!(field(env, "id").is_some_and(|id| !id.is_empty()), "every entry has an id: {env}");
    }

    // The local program entry runs as written (with the built binary's path).
    let local = environments.iter().find(|e| field(e, "program").as_deref() == Some(doc_example::EXECUTOR)).expect("local entry");
    let mut command = Command::new(executor_bin());
    command.args(args_of(local));
    let mut server = Executor::spawn(command);
    server.handshake();
    assert_eq!(server.run("p", sh("echo from-codex-entry")).stdout_str(), "from-codex-entry\n");

    // The SSH entry is exactly the command line the SSH test runs.
    let ssh = environments.iter().find(|e| field(e, "program").as_deref() == Some("/usr/bin/ssh")).expect("ssh entry");
    assert_eq!(args_of(ssh), doc_ssh_argv()[1..].to_vec());

    // The url entry reaches the server started as the page shows.
    let url = environments.iter().find_map(|e| field(e, "url")).expect("url entry");
    let start = format!("executor --listen {url}");
    assert!(fenced_blocks(&text, "sh").iter().any(|b| b.lines().any(|l| l.trim() == start)), "docs/codex.md must show `{start}`");
    let mut command = Command::new(executor_bin());
    command.args(["--listen", &url]);
    let ws = WsServer::spawn(command);
    assert_eq!(ws.url, url, "the server announces the URL the entry names");
    let mut client = ws.ready();
    assert_eq!(client.call("environment/status", json!({})), json!({"status": "ready"}));
}
