//! The command line as an operator meets it: one clap parser for everything (`sandbox`
//! and `doctor` are subcommands), usage errors exit 2 at start-up with every line
//! starting `executor:`, `executor sandbox` exits like a shell, `--version` names what
//! the binary speaks and embeds.

use executor_tests::RpcClient as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use executor_tests::executor_bin;

fn executor(args: &[&str]) -> Output {
    Command::new(executor_bin()).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run executor {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit status 2, nothing on stdout, and every stderr line starting `executor: `.
fn assert_usage_error(args: &[&str], expected: &str) -> String {
    let out = executor(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout: {}", text(&out.stdout));
    assert!(!stderr.is_empty() && stderr.lines().all(|l| l.starts_with("executor: ")), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr:?} lacks {expected:?}");
    stderr
}

#[test]
fn usage_errors_exit_2_at_startup() {
    let digest = "1ad7841e6c92c99fa7689513fea063ad0006a8d67ba1f68c7d54e4ffee59e784";
    assert_usage_error(&["--listen", "foo"], "`foo` is neither `stdio` nor `ws://IP:PORT`");
    assert_usage_error(&["--listen", "ws://localhost:1"], "with an IP address");
    assert_usage_error(&["--unknown-flag"], "unexpected argument '--unknown-flag'");
    let ws = ["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token"];
    assert_usage_error(&[&ws[..], &["--ws-token-sha256", "zz"]].concat(), "64 hexadecimal digits");
    assert_usage_error(&[&ws[..], &["--ws-token-sha256", digest, "--ws-token-file", "/x"]].concat(), "exactly one of");
    assert_usage_error(&["--listen", "ws://127.0.0.1:0", "--ws-token-sha256", digest], "require --ws-auth");
    assert_usage_error(&["--bwrap", "bundled", "--bwrap-path", "/usr/bin/bwrap"], "exclude each other");
    assert_usage_error(&["doctor", "--bwrap", "bundled", "--bwrap-path", "/usr/bin/bwrap"], "exclude each other");
    assert_usage_error(&["sandbox", "--bwrap", "bundled", "--bwrap-path", "/usr/bin/bwrap", "--", "true"], "exclude each other");
    assert_usage_error(&["sandbox", "--policy", "none", "--", "true"], "invalid value 'none'");
}

#[test]
fn a_bwrap_path_that_is_missing_or_untrusted_stops_the_start_with_a_fix_for_the_path() {
    let missing = assert_usage_error(&["--bwrap-path", "/nonexistent/bwrap"], "/nonexistent/bwrap cannot be found");
    assert!(missing.contains("FIX: give --bwrap-path the path of an installed bwrap"), "{missing}");

    // A copy of the system bwrap under /tmp (world-writable): refused, and the fix is
    // about the path, not about installing bubblewrap.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("bwrap");
    std::fs::copy("/usr/bin/bwrap", &copy).expect("copy /usr/bin/bwrap");
    let copy = copy.to_str().expect("utf8");
    for args in [
        &["--bwrap-path", copy][..],
        &["--listen", "ws://127.0.0.1:0", "--bwrap-path", copy],
        &["sandbox", "--bwrap-path", copy, "--", "true"],
    ] {
        let stderr = assert_usage_error(args, "is not trusted");
        assert!(stderr.contains(&format!("FIX: make {copy} and every directory above it owned by root")), "{stderr}");
        assert!(!stderr.contains("install bubblewrap"), "{stderr}");
    }
}

#[test]
fn a_trusted_bwrap_path_starts_the_server() {
    let mut server = executor_tests::Executor::ready(&["--bwrap-path", "/usr/bin/bwrap"]);
    server.close_stdin();
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn sandbox_is_a_subcommand_in_help() {
    let help = text(&executor(&["--help"]).stdout);
    let commands = help.split("Commands:").nth(1).expect("a Commands section");
    assert!(commands.lines().any(|l| l.trim_start().starts_with("sandbox ")), "{help}");
    assert!(commands.lines().any(|l| l.trim_start().starts_with("doctor ")), "{help}");

    let out = executor(&["help", "sandbox"]);
    assert_eq!(out.status.code(), Some(0));
    let sandbox_help = text(&out.stdout);
    assert!(sandbox_help.contains("Usage: executor sandbox [OPTIONS]"), "{sandbox_help}");
    // Flags of the launcher come from the same parser as the server's.
    for flag in
        ["--policy", "--writable", "--deny", "--network", "--cwd", "--permissions", "--bwrap", "--bwrap-path", "--sandbox-max-procs"]
    {
        assert!(sandbox_help.contains(flag), "{flag} missing from `executor help sandbox`: {sandbox_help}");
    }
    // What --writable adds to: the default policy's own writable set.
    assert!(sandbox_help.contains("/tmp and $TMPDIR"), "{sandbox_help}");
    assert_eq!(text(&executor(&["sandbox", "--help"]).stdout), sandbox_help);
}

#[test]
fn sandbox_exits_like_a_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().to_str().expect("utf8");
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let script = script.to_str().expect("utf8");
    let run = |cmd: &[&str]| executor(&[&["sandbox", "--cwd", cwd, "--"][..], cmd].concat());

    let missing = run(&["no-such-command-here"]);
    assert_eq!(missing.status.code(), Some(127), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).starts_with("executor: cannot execute `no-such-command-here`"), "{}", text(&missing.stderr));
    let not_executable = run(&[script]);
    assert_eq!(not_executable.status.code(), Some(126), "{}", text(&not_executable.stderr));
    assert_eq!(run(&["sh", "-c", "exit 7"]).status.code(), Some(7));
    // bwrap's own failure status, from the command: no host diagnosis, the status kept.
    let fails = run(&["false"]);
    assert_eq!(fails.status.code(), Some(1));
    assert!(fails.stderr.is_empty(), "{}", text(&fails.stderr));
    assert_eq!(run(&["sh", "-c", "kill -TERM $$"]).status.code(), Some(128 + 15));
    // Without `--` too, and the command's own options are its own.
    let ls = executor(&["sandbox", "--cwd", cwd, "ls", "-d", "/"]);
    assert_eq!((ls.status.code(), text(&ls.stdout)), (Some(0), "/\n".to_string()), "{}", text(&ls.stderr));
}

/// The server keeps its own status for a command that cannot be executed (it reports
/// `sandboxDenied`); only the CLI maps it to 127.
#[test]
fn the_server_still_reports_an_unexecutable_command_as_sandbox_denied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = executor_tests::Executor::ready(&[]);
    let mut params = serde_json::json!({"argv": ["no-such-command-here"], "cwd": executor_tests::uri(dir.path()),
        "env": {"PATH": "/usr/bin:/bin"}, "tty": false});
    params["sandbox"] = executor_tests::workspace_write_sandbox(dir.path());
    let out = server.run("p", params);
    assert_eq!(out.sandbox_denied, Some(true), "{out:?}");
    assert_ne!(out.exit_code, Some(127), "{out:?}");
}

#[test]
fn version_names_the_protocol_and_the_bundled_bwrap() {
    let out = executor(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let version = text(&out.stdout);
    let doctor = Command::new(executor_bin()).args(["doctor", "--json"]).output().expect("doctor");
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("doctor --json");
    let digest = report["bundled_bwrap"]["expected_sha256"].as_str().expect("digest");
    let lines: Vec<&str> = version.lines().collect();
    assert_eq!(lines[0], format!("executor {}", env!("CARGO_PKG_VERSION")), "{version}");
    assert!(lines.contains(&"protocol: Codex exec-server protocol of codex-cli 0.169.0"), "{version}");
    assert!(lines.contains(&format!("bundled bwrap: bubblewrap 0.12.0, sha256:{digest}").as_str()), "{version}");
    assert_eq!(text(&executor(&["-V"]).stdout), version);
}

/// `executor sandbox` on a host that refuses user namespaces prints the line the server
/// adds to a sandboxed command's stderr there: the same cause, the same FIX.
#[test]
fn sandbox_cli_and_server_explain_a_refusing_host_alike() {
    let exe = executor_bin();
    let refuse = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"";
    let cli = Command::new("unshare")
        .args(["-U", "-r", "sh", "-c", refuse])
        .arg(&exe)
        .args(["sandbox", "--cwd", "/tmp", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("unshare -U -r");
    let cli_stderr = text(&cli.stderr);
    assert_eq!(cli.status.code(), Some(125), "{cli_stderr}");
    let cli_line = cli_stderr.lines().find(|l| l.starts_with("executor: ")).unwrap_or_else(|| panic!("{cli_stderr}"));
    assert!(cli_line.contains("FIX: `sysctl -w user.max_user_namespaces=15000`"), "{cli_line}");

    let mut command = Command::new("unshare");
    command.args(["-U", "-r", "sh", "-c", refuse]).arg(&exe).args(["--listen", "stdio"]);
    let mut server = executor_tests::Executor::spawn(command);
    server.handshake();
    let mut params = executor_tests::sh("true");
    params["sandbox"] = executor_tests::workspace_write_sandbox(Path::new("/tmp"));
    let out = server.run("p", params);
    assert_eq!(out.sandbox_denied, Some(true), "{out:?}");
    let server_stderr = text(&out.stderr);
    assert!(server_stderr.lines().any(|l| l == cli_line), "server said {server_stderr:?}, the CLI {cli_line:?}");
}

/// What README and `executor help sandbox` say of `--writable`: it adds to the policy's
/// writable set (the cwd, /tmp and $TMPDIR under workspace-write), and under read-only it
/// is the whole set.
#[test]
fn sandbox_writable_adds_to_the_policy() {
    // Outside /tmp, which workspace-write makes writable anyway (the checkout itself may
    // live under /tmp, as a CI clone does).
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let parent = if target_tmp.starts_with("/tmp") { Path::new("/var/tmp") } else { target_tmp };
    let base = tempfile::tempdir_in(parent).expect("tempdir");
    let (cwd, extra, other) = (base.path().join("cwd"), base.path().join("extra"), base.path().join("other"));
    for d in [&cwd, &extra, &other] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let tmp_file = format!("/tmp/executor-cli-writable-{}", std::process::id());
    let touch = |policy: &str, target: &Path| {
        let args = [
            "sandbox",
            "--policy",
            policy,
            "--cwd",
            cwd.to_str().expect("utf8"),
            "--writable",
            extra.to_str().expect("utf8"),
            "--",
            "touch",
        ];
        Command::new(executor_bin()).args(args).arg(target).stdin(Stdio::null()).output().expect("executor sandbox").status.success()
    };
    assert!(touch("workspace-write", &extra.join("a")), "the --writable directory");
    assert!(touch("workspace-write", &cwd.join("a")), "the cwd");
    assert!(touch("workspace-write", Path::new(&tmp_file)), "/tmp");
    assert!(!touch("workspace-write", &other.join("a")), "nothing else");
    assert!(touch("read-only", &extra.join("b")), "read-only: the --writable directory");
    assert!(!touch("read-only", &cwd.join("b")), "read-only: not the cwd");
    let _ = std::fs::remove_file(&tmp_file);
    assert!(!Path::new(&format!("{tmp_file}-ro")).exists());
    assert!(!touch("read-only", Path::new(&format!("{tmp_file}-ro"))), "read-only: not /tmp");
}
