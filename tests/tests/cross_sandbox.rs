//! One sandbox cannot be turned against the next (issue 18 items 1 and 2).
//!
//! Each command runs in its own sandbox and may change anything inside its writable
//! roots. These scenarios let a sandboxed command prepare the ground — a directory
//! turned into a symlink to a host directory, an ancestor of a denied directory moved
//! away — and check that a later sandbox is not widened by it: the grant through the
//! planted link is refused with -32602 naming the path and the link (for processes and
//! fs requests alike, in each of the four ways a grant names a path), nothing lands in
//! the host directory, and the denied directory cannot be moved out from under its
//! path. Root and the unprivileged `executor-test` user; ci/test.sh runs it with each
//! launcher.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use executor_tests::RpcClient as _;
use std::path::{Path, PathBuf};

use executor_tests::unprivileged::{chown_tree, serve_stdio_as};
use executor_tests::{b64, error_of, uri, Executor, RunOutput};
use serde_json::{json, Value};

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    host: PathBuf,
}

impl Tree {
    fn new(user: Option<(u32, u32)>) -> Self {
        let dir = tempfile::Builder::new().prefix("executor-cross-").tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (ws, host) = (root.join("ws"), root.join("host"));
        std::fs::create_dir_all(ws.join("b1")).unwrap();
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("h.txt"), b"host").unwrap();
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        if let Some(ids) = user {
            chown_tree(ids, &root);
        }
        Tree { _dir: dir, root, ws, host }
    }

    fn host_listing(&self) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(&self.host).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

fn path_entry(p: &Path, access: &str) -> Value {
    json!({"path": {"type": "path", "path": uri(p)}, "access": access})
}

fn special(kind: &str, access: &str) -> Value {
    json!({"path": {"type": "special", "value": {"kind": kind}}, "access": access})
}

fn sandbox(entries: Vec<Value>, cwd: &Path, workspace_roots: Option<Vec<&Path>>) -> Value {
    let mut ctx = json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": entries},
        "network": "restricted"}, "windowsSandboxLevel": "disabled", "cwd": uri(cwd)});
    if let Some(roots) = workspace_roots {
        ctx["workspaceRoots"] = json!(roots.iter().map(|r| uri(r)).collect::<Vec<_>>());
    }
    ctx
}

/// Runs `sh -c script` in `cwd` under `sandbox`; the start's error, or the output.
fn run(s: &mut Executor, id: &str, script: &str, cwd: &Path, sandbox: Value) -> Result<RunOutput, (i64, String)> {
    let params = json!({"processId": id, "argv": ["sh", "-c", script], "cwd": uri(cwd),
        "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "sandbox": sandbox});
    let started = s.request("process/start", params);
    if let Some(e) = error_of(&started) {
        return Err(e);
    }
    Ok(RunOutput::from_events(&s.events_until_closed(id)))
}

#[track_caller]
fn assert_refused_link(answer: Result<RunOutput, (i64, String)>, path: &Path, form: &str) {
    let (code, message) = match answer {
        Err(e) => e,
        Ok(out) => panic!("{form}: the grant through a planted link was allowed: {out:?}"),
    };
    assert_eq!(code, -32602, "{form}: {message}");
    let link = path.display().to_string();
    assert!(message.contains(&link) && message.contains("symlink"), "{form}: the error must name the link {link}: {message}");
}

fn planted_symlink_does_not_widen_the_next_sandbox(user: Option<(u32, u32)>) {
    let t = Tree::new(user);
    let mut s = serve_stdio_as(user, &t.root, &[]);
    let (ws, b1, later) = (t.ws.clone(), t.ws.join("b1"), t.ws.join("later"));
    let base = || vec![special("root", "read"), path_entry(&t.ws, "write")];

    // A command with the workspace writable plants the links (`later` is named by the
    // policy but missing when it runs).
    let mut planting = base();
    planting.push(path_entry(&later, "write"));
    let script = format!("rm -r b1 && ln -s {h} b1 && ln -s {h} later", h = t.host.display());
    let out = run(&mut s, "plant", &script, &ws, sandbox(planting.clone(), &ws, None)).unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(std::fs::symlink_metadata(&b1).unwrap().file_type().is_symlink());

    let touch = format!("touch {}/pwn", t.host.display());
    let mut explicit = vec![special("root", "read"), path_entry(&b1, "write")];
    let forms: Vec<(&str, Value, &Path)> = vec![
        ("explicit write entry", sandbox(std::mem::take(&mut explicit), &ws, None), &b1),
        (
            "current_working_directory",
            sandbox(vec![special("root", "read"), special("current_working_directory", "write")], &b1, None),
            &b1,
        ),
        (
            "project_roots",
            sandbox(
                vec![special("root", "read"), json!({"path": {"type": "special", "value": {"kind": "project_roots"}}, "access": "write"})],
                &ws,
                Some(vec![&b1]),
            ),
            &b1,
        ),
        ("entry planted after it was granted", sandbox(planting, &ws, None), &later),
    ];
    for (n, (form, policy, link)) in forms.into_iter().enumerate() {
        let cwd = if form == "current_working_directory" { &b1 } else { &ws };
        assert_refused_link(run(&mut s, &format!("p{n}"), &touch, cwd, policy.clone()), link, form);
        let write = s.request("fs/writeFile", json!({"path": uri(&link.join("pwn")), "dataBase64": b64(b"x"), "sandbox": policy.clone()}));
        assert_refused_link(error_of(&write).map_or_else(|| panic!("{form}: fs/writeFile allowed: {write}"), Err), link, form);
        let mkdir = s.request("fs/createDirectory", json!({"path": uri(&link.join("pwn-dir")), "sandbox": policy}));
        assert_refused_link(error_of(&mkdir).map_or_else(|| panic!("{form}: fs/createDirectory allowed: {mkdir}"), Err), link, form);
    }
    assert_eq!(t.host_listing(), vec!["h.txt".to_string()], "something was written in the host directory");

    // Control: a link outside every writable root (made on the host) is followed, and
    // the grant through it works.
    let alias = t.root.join("alias");
    std::os::unix::fs::symlink(&ws, &alias).unwrap();
    let policy = sandbox(vec![special("root", "read"), path_entry(&alias, "write")], &alias, None);
    let out = run(&mut s, "control", "touch via-alias", &alias, policy).unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(ws.join("via-alias").exists());
}

fn denied_dir_cannot_be_moved_away(user: Option<(u32, u32)>) {
    let t = Tree::new(user);
    let denied = t.ws.join("a/mid/priv");
    std::fs::create_dir_all(&denied).unwrap();
    std::fs::write(denied.join("s.txt"), b"TOPSECRET").unwrap();
    std::fs::create_dir(t.ws.join("c")).unwrap();
    if let Some(ids) = user {
        chown_tree(ids, &t.root);
    }
    let mut s = serve_stdio_as(user, &t.root, &[]);
    let policy = sandbox(vec![special("root", "read"), path_entry(&t.ws, "write"), path_entry(&denied, "none")], &t.ws, None);
    let script = "mv a b; echo mv-a=$?; mv a/mid m2; echo mv-mid=$?; \
                  python3 -c 'import os; os.rename(\"a\", \"b2\")' 2>/dev/null; echo py=$?; mv c d; echo mv-c=$?";
    let out = run(&mut s, "mover", script, &t.ws, policy.clone()).unwrap();
    let stdout = out.stdout_str();
    for refused in ["mv-a=1", "mv-mid=1", "py=1"] {
        assert!(
            stdout.contains(refused),
            "an ancestor of the denied path was moved ({refused}): {stdout} {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"), "{out:?}");
    // Control: other directories in the same root move freely.
    assert!(stdout.contains("mv-c=0"), "{stdout}");
    assert!(t.ws.join("d").is_dir() && !t.ws.join("c").exists());
    assert_eq!(std::fs::read(denied.join("s.txt")).unwrap(), b"TOPSECRET");
    for moved in ["b", "m2", "b2", "a/m2"] {
        assert!(!t.ws.join(moved).exists(), "{moved} exists on the host");
    }
    // The next sandbox with the same policy still hides it.
    let out = run(&mut s, "reader", "cat a/mid/priv/s.txt b/mid/priv/s.txt 2>&1", &t.ws, policy).unwrap();
    assert!(!out.stdout_str().contains("TOPSECRET"), "{out:?}");
}

executor_tests::as_root_and_unprivileged!(planted_symlink_does_not_widen_the_next_sandbox, denied_dir_cannot_be_moved_away);
