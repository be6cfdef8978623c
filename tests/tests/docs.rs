//! The deployment docs show what the tests run: the SSH command line, the Dockerfile's
//! entrypoint, and environments.toml entries that work.

use executor_tests::RpcClient as _;
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
    assert!(shell_blocks.iter().any(|b| b.lines().any(|l| l.trim() == line)), "docs/deploy-ssh.md must show exactly:\n{line}");
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
        env.get("args").and_then(|v| v.as_array()).expect("args").iter().map(|a| a.as_str().expect("string arg").to_owned()).collect()
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

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The cells of a markdown table row (`\|` inside a cell stays in the cell).
fn table_cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    row.replace("\\|", "\u{0}").split('|').map(|c| c.trim().replace('\u{0}', "|")).collect()
}

/// `(name, default cell)` of every row of the README's options table.
fn readme_options() -> Vec<(String, String)> {
    let readme = repo_file("README.md");
    let table = readme.split_once("### Options").map(|(_, t)| t).expect("an Options section");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells = table_cells(row);
            let name = cells[0].trim_matches('`').split(|c: char| c == '`' || c.is_whitespace()).next().unwrap_or_default();
            (name.to_owned(), cells[1].clone())
        })
        .collect()
}

/// `(flag, default)` of every option of the server in `executor --help`.
fn help_options() -> Vec<(String, Option<String>)> {
    let out = Command::new(executor_bin()).arg("--help").output().expect("executor --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let options_section = help.split_once("\nOptions:\n").map(|(_, rest)| rest).expect("an Options section");
    // The section ends at the next unindented line (the logging notes).
    let section = options_section.lines().take_while(|l| l.is_empty() || l.starts_with(' '));
    let mut options: Vec<(String, Option<String>)> = Vec::new();
    for line in section.map(str::trim) {
        if let Some(flag) = line.strip_prefix("--").and_then(|rest| rest.split_whitespace().next()) {
            options.push((format!("--{flag}"), None));
        } else if let (Some(default), Some(last)) = (line.strip_prefix("[default: "), options.last_mut()) {
            last.1 = Some(default.trim_end_matches(']').to_owned());
        }
    }
    options.retain(|(flag, _)| flag != "--help" && flag != "--version");
    options
}

#[test]
fn readme_options_table_has_each_flag_once_with_the_defaults_of_help() {
    let rows = readme_options();
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &rows {
        assert!(seen.insert(name.clone()), "README lists {name} twice");
    }
    let help = help_options();
    let flags: Vec<&String> = rows.iter().map(|(n, _)| n).filter(|n| n.starts_with("--")).collect();
    let mut documented: Vec<&String> = flags.clone();
    documented.sort();
    let mut offered: Vec<&String> = help.iter().map(|(f, _)| f).collect();
    offered.sort();
    assert_eq!(documented, offered, "README options table and `executor --help` list different flags");
    for (flag, default) in &help {
        let cell = &rows.iter().find(|(n, _)| n == flag).expect("row").1;
        match default {
            Some(d) => assert_eq!(cell, &format!("`{d}`"), "{flag}: README default {cell:?}, --help says {d:?}"),
            None => assert!(!cell.starts_with('`'), "{flag}: README gives default {cell} that --help does not know"),
        }
    }
    for var in ["EXECUTOR_LOG", "RUST_LOG"] {
        assert!(seen.contains(var), "README options table lacks {var}");
    }
}

/// The pages of the repository that users read.
fn user_docs() -> Vec<String> {
    let docs_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut pages: Vec<String> = std::fs::read_dir(&docs_dir)
        .expect("docs/")
        .map(|e| format!("docs/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".md"))
        .collect();
    pages.extend(["README.md", "bwrap-vendor/PROVENANCE.md", "ci/container/README.md"].map(String::from));
    pages
}

/// Repository paths named in backticks in `text` (`docs/x.md`, `ci/test.sh`, ...);
/// patterns and placeholders (`*`, `<...>`, `$VAR`) are not paths.
fn named_paths(text: &str) -> Vec<String> {
    const ROOTS: [&str; 8] = ["docs/", "ci/", "tests/", "executor/", "bwrap-vendor/", "fs-helper/", "bench/", ".cargo/"];
    let spans = text.split('`').skip(1).step_by(2);
    spans
        .flat_map(|span| span.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|t| t.split("::").next().unwrap_or_default().to_owned())
        .map(|t| t.trim_start_matches('(').trim_end_matches([')', ',', '.', ':', ';']).to_owned())
        .filter(|t| ROOTS.iter().any(|r| t.starts_with(r)))
        .filter(|t| !t.contains(['*', '<', '$', '{']))
        .collect()
}

#[test]
fn docs_name_only_files_that_are_in_the_repo() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for page in user_docs() {
        let text = repo_file(&page);
        for outside in ["DESIGN.md", "protocol.md", "protocol-transcripts"] {
            assert!(!text.contains(outside), "{page} refers to {outside}, which is not in the repository");
        }
        for path in named_paths(&text) {
            assert!(root.join(&path).exists(), "{page} names `{path}`, which is not in the repository");
        }
    }
}

/// The digest command of docs/deploy-container.md gives what `--ws-token-sha256` accepts
/// for that token.
#[test]
fn deploy_container_digest_command_matches_the_server() {
    let text = doc("deploy-container.md");
    let command = fenced_blocks(&text, "sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>())
        .find(|l| l.contains("| sha256sum"))
        .expect("a sha256sum command");
    let command = command.split('#').next().unwrap_or_default().trim().to_owned();
    assert_eq!(command, r#"printf %s "$TOKEN" | sha256sum"#);
    let token = "doc-token-0123";
    let out = Command::new("sh").args(["-c", &command]).env("TOKEN", token).output().expect("sh");
    let digest = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    let server = WsServer::start(&["--ws-auth", "capability-token", "--ws-token-sha256", &digest]);
    let bearer = format!("Bearer {token}");
    let mut client = executor_tests::ws::WsClient::connect(&server.url, &[("Authorization", &bearer)]).expect("the token is accepted");
    client.handshake();
    assert_eq!(client.call("environment/status", json!({})), json!({"status": "ready"}));
    let readme = repo_file("README.md");
    assert!(readme.contains(r#"`printf %s "$TOKEN" \| sha256sum`"#), "README gives the same command");
}

/// The unprivileged install line of docs/deploy-ssh.md, run as the unprivileged test
/// account in a home of its own, installs a binary that runs.
#[test]
fn deploy_ssh_unprivileged_install_works() {
    let text = doc("deploy-ssh.md");
    let lines: Vec<String> = fenced_blocks(&text, "sh").iter().flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>()).collect();
    let remote = |line: &str| line.split_once(" '").and_then(|(_, r)| r.strip_suffix('\'')).map(str::to_owned);
    let with_sudo = lines.iter().find(|l| l.contains("/usr/local/bin/executor") && l.contains(" install ")).expect("a system-wide install");
    assert!(remote(with_sudo).is_some_and(|r| r.starts_with("sudo install ")), "a /usr/local/bin install needs sudo: {with_sudo}");
    let own = lines.iter().find(|l| l.contains("install ") && l.contains("$HOME")).expect("an install without privilege");
    let own = remote(own).expect("a quoted remote command");

    let user = executor_tests::unprivileged::TEST_USER;
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::copy(executor_bin(), home.path().join("executor.new")).expect("copy the binary");
    let chown = Command::new("chown").args(["-R", &format!("{user}:{user}")]).arg(home.path()).status().expect("chown");
    assert!(chown.success());
    let run_as = |script: &str| {
        Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--clear-groups", "--", "sh", "-c", script])
            .env("HOME", home.path())
            .current_dir(home.path())
            .output()
            .expect("setpriv")
    };
    let installed = run_as(&own);
    assert!(installed.status.success(), "{own}: {}", String::from_utf8_lossy(&installed.stderr));
    let version = run_as("\"$HOME/.local/bin/executor\" --version");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("executor "), "{version:?}");
    assert!(!home.path().join("executor.new").exists(), "the copy is removed");
}

/// The Kubernetes example of docs/deploy-container.md is valid YAML with what a fleet needs
/// (a Secret for the JWT key, a readiness probe on /readyz, a securityContext that lets
/// bubblewrap create user namespaces), and the executor starts with its container's
/// arguments (paths and the port swapped for test ones) and serves a JWT client over TLS.
#[test]
fn deploy_container_kubernetes_example_is_valid_and_runs() {
    use std::os::unix::fs::PermissionsExt as _;
    use yaml_rust2::{Yaml, YamlLoader};

    let text = doc("deploy-container.md");
    let blocks = fenced_blocks(&text, "yaml");
    assert_eq!(blocks.len(), 1, "one yaml block (the Kubernetes example)");
    let docs = YamlLoader::load_from_str(&blocks[0]).unwrap_or_else(|e| panic!("invalid YAML: {e}"));
    let kind = |d: &Yaml| d["kind"].as_str().unwrap_or_default().to_owned();
    let secret = docs.iter().find(|d| kind(d) == "Secret").expect("a Secret");
    let secret_name = secret["metadata"]["name"].as_str().expect("secret name");
    let key = secret["stringData"]["jwt-secret"].as_str().expect("stringData.jwt-secret");
    assert!(key.len() >= 32, "the example key is long enough for the executor");
    let deployment = docs.iter().find(|d| kind(d) == "Deployment").expect("a Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_vec().expect("volumes");
    assert!(volumes.iter().any(|v| v["secret"]["secretName"].as_str() == Some(secret_name)), "the Secret is mounted");
    let container = &pod["containers"][0];
    assert_eq!(container["command"].as_vec().map(Vec::len), Some(1), "command replaces the image's ENTRYPOINT");
    assert_eq!(container["command"][0].as_str(), Some("executor"));
    let probe = &container["readinessProbe"]["httpGet"];
    assert_eq!(probe["path"].as_str(), Some("/readyz"));
    assert_eq!(probe["scheme"].as_str(), Some("HTTPS"));
    let security = &container["securityContext"];
    assert_eq!(security["seccompProfile"]["type"].as_str(), Some("Unconfined"), "user namespaces need it");
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(10001));

    let args: Vec<String> = container["args"].as_vec().expect("args").iter().map(|a| a.as_str().expect("string args").to_owned()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = executor_tests::pki::Ca::new(dir.path(), "k8s");
    let leaf = ca.server("server");
    let secret_file = dir.path().join("jwt-secret");
    std::fs::write(&secret_file, key).expect("write secret");
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    let swap = |arg: &str| -> String {
        match arg {
            "wss://0.0.0.0:8765" => "wss://127.0.0.1:0".into(),
            "/run/tls/tls.crt" => leaf.cert.display().to_string(),
            "/run/tls/tls.key" => leaf.key.display().to_string(),
            "/run/executor/jwt-secret" => secret_file.display().to_string(),
            other => {
                assert!(!other.starts_with('/'), "a path the test does not swap: {other}");
                other.to_owned()
            }
        }
    };
    let mut command = Command::new(executor_bin());
    command.args(args.iter().map(|a| swap(a)));
    let server = WsServer::spawn_capturing_stderr(command);
    let tls = executor_tests::ws::tls_client_config(&ca.cert, None);
    assert_eq!(executor_tests::ws::https_get(server.addr(), "/readyz", tls.clone()).expect("readyz"), (200, "ready".into()));
    let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].clone()).unwrap_or_else(|| panic!("{flag}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = json!({"sub": "job", "iss": at("--ws-issuer"), "aud": at("--ws-audience"), "exp": now + 60});
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()))
        .expect("encode");
    let bearer = format!("Bearer {token}");
    let mut client =
        executor_tests::ws::WsClient::connect_tls(&server.url, &[("Authorization", &bearer)], tls).expect("JWT client over TLS");
    client.handshake();
    assert_eq!(client.run("k", sh("echo from-the-pod")).stdout_str(), "from-the-pod\n");
}
