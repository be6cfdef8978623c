//! Filesystem escape suite for the `fs/*` methods (issue 4 item 4; DESIGN.md §5).
//!
//! Every scenario speaks the real protocol over stdio to the real executor, which runs
//! either as root or as the unprivileged user `executor-test` (through `setpriv`, from a
//! world-readable copy of the binary). Requests carry a workspace-write-like restricted
//! profile (root readable, a temp workspace writable, some paths `none`), so they are
//! served by the fs-helper inside bwrap + Landlock + seccomp. Each attack is judged by
//! host state afterwards (or the exact error), and is paired with a control that shows
//! the same kind of action works where it is allowed — usually the same request without
//! a sandbox, which the same user is allowed to perform — so nothing here passes because
//! the action was impossible anyway. Scratch trees are owned by the executor's user, so
//! only the sandbox can refuse what is refused.
//!
//! Related coverage elsewhere: tests/tests/fs_sandboxed.rs (basic `..`, symlink out,
//! denied read/list/walk/copy, /proc/self/environ) and tests/tests/sandbox_escape.rs
//! (processes; creating a hard link to an outside file: `writes_outside_writable_roots`).
//! docs/security-model.md "fs escape categories" summarises the results.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use executor_tests::RpcClient as _;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use executor_tests::unprivileged::{chown_tree, serve_stdio_as, test_user_ids};
use executor_tests::{b64, error_of, unb64, uri, Executor};
use serde_json::{json, Value};

/// In the executor's environment; must never come back from a sandboxed request.
const ENV_SECRET: &str = "hunter2-do-not-leak";
/// In every denied file; must never come back from a sandboxed request.
const FILE_SECRET: &[u8] = b"TOPSECRET-file-content";

const READ_ONLY: &str = "Read-only file system (os error 30)";
const DENIED: &str = "Permission denied (os error 13)";

// ------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------

/// Who runs the executor: root, or `executor-test` (uid, gid).
#[derive(Clone, Copy)]
struct Who(Option<(u32, u32)>);

impl Who {
    fn root() -> Self {
        Who(None)
    }
    fn user() -> Self {
        Who(Some(test_user_ids()))
    }
}

/// The scratch tree (all under one canonical temp dir, mode 0755):
///
/// ```text
/// ws/              write   (the workspace; the sandbox cwd)
///   private/       none    (a denied dir inside the writable root; key.txt)
///   secret.env     none    (a denied file inside the writable root)
/// outside/         read    (o.txt)
///   denied/        none    (a denied dir inside a readable root; d.txt, sub/d2.txt)
/// secret/          none    (s.txt); also the executor's own cwd
/// ```
///
/// The policy also denies `ws/later`, which does not exist until a test creates it.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    outside: PathBuf,
    secret: PathBuf,
    ws_denied: PathBuf,
    ws_denied_file: PathBuf,
    outside_denied: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("executor-fsx-").tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let ws = root.join("ws");
        let outside = root.join("outside");
        let secret = root.join("secret");
        let ws_denied = ws.join("private");
        let outside_denied = outside.join("denied");
        for d in [&ws, &outside, &secret, &ws_denied, &outside_denied, &outside_denied.join("sub")] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(outside.join("o.txt"), b"outside\n").unwrap();
        let ws_denied_file = ws.join("secret.env");
        for f in [
            secret.join("s.txt"),
            ws_denied.join("key.txt"),
            ws_denied_file.clone(),
            outside_denied.join("d.txt"),
            outside_denied.join("sub/d2.txt"),
        ] {
            std::fs::write(f, FILE_SECRET).unwrap();
        }
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Tree { _dir: dir, root, ws, outside, secret, ws_denied, ws_denied_file, outside_denied }
    }

    /// Hands the tree to `who` and starts an executor as `who`, cwd = `secret/`.
    fn serve(self, who: Who) -> Fx {
        if let Some(ids) = who.0 {
            chown_tree(ids, &self.root);
        }
        let server = serve_stdio_as(who.0, &self.secret, &[("EXECUTOR_TEST_SECRET_TOKEN", ENV_SECRET)]);
        Fx { t: self, who, s: server }
    }
}

/// A tree and the executor serving it.
struct Fx {
    t: Tree,
    who: Who,
    s: Executor,
}

impl Fx {
    fn policy(&self) -> Value {
        let entry = |p: &Path, access: &str| json!({"path": {"type": "path", "path": uri(p)}, "access": access});
        json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
            entry(&self.t.ws, "write"),
            entry(&self.t.secret, "none"),
            entry(&self.t.ws_denied, "none"),
            entry(&self.t.ws_denied_file, "none"),
            entry(&self.t.outside_denied, "none"),
            entry(&self.t.ws.join("later"), "none")]},
            "network": "restricted"}, "windowsSandboxLevel": "disabled", "cwd": uri(&self.t.ws)})
    }

    /// Sends a sandboxed request without waiting; returns its id.
    fn send_sandboxed(&mut self, method: &str, mut params: Value) -> i64 {
        params["sandbox"] = self.policy();
        self.s.send_request(method, params)
    }

    /// The full response of a sandboxed request.
    fn sandboxed(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_sandboxed(method, params);
        self.s.response(id)
    }

    /// A sandboxed request that must succeed.
    #[track_caller]
    fn ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.sandboxed(method, params.clone());
        match response.get("result") {
            Some(r) => r.clone(),
            None => panic!("sandboxed {method} {params} failed: {response}"),
        }
    }

    /// A sandboxed request that must fail: (code, message).
    #[track_caller]
    fn refused(&mut self, method: &str, params: Value) -> (i64, String) {
        let response = self.sandboxed(method, params.clone());
        error_of(&response).unwrap_or_else(|| panic!("sandboxed {method} {params} was allowed: {response}"))
    }

    /// A sandboxed write that must be refused by the sandbox: the read-only mount
    /// (EROFS) or Landlock (EACCES); never by something unrelated such as ENOENT.
    #[track_caller]
    fn write_refused(&mut self, method: &str, params: Value) {
        let (code, message) = self.refused(method, params.clone());
        let known = [(-32603, READ_ONLY), (-32600, DENIED)];
        assert!(known.contains(&(code, message.as_str())), "{method} {params}: unexpected refusal {code} {message}");
    }

    /// The same request without a sandbox (served by the executor itself).
    #[track_caller]
    fn direct_ok(&mut self, method: &str, params: Value) -> Value {
        self.s.call(method, params)
    }

    /// The decoded content of a sandboxed readFile of the URI `path`, or its error.
    fn read_sandboxed(&mut self, path: &str) -> Result<Vec<u8>, (i64, String)> {
        let response = self.sandboxed("fs/readFile", json!({"path": path}));
        match error_of(&response) {
            Some(e) => Err(e),
            None => Ok(unb64(response["result"]["dataBase64"].as_str().unwrap())),
        }
    }
}

fn write(path: &Path, data: &[u8]) -> Value {
    json!({"path": uri(path), "dataBase64": b64(data)})
}

fn write_uri(path: &str, data: &[u8]) -> Value {
    json!({"path": path, "dataBase64": b64(data)})
}

fn copy(src: &Path, dst: &Path, recursive: bool) -> Value {
    json!({"sourcePath": uri(src), "destinationPath": uri(dst), "recursive": recursive})
}

fn walk(path: &Path) -> Value {
    json!({"path": uri(path), "options": {"maxDepth": 10, "maxDirectories": 1000, "maxEntries": 10000, "followDirectorySymlinks": false}})
}

/// Everything under `dir`: relative path -> file content, `<dir>`, or `-> target`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let ft = std::fs::symlink_metadata(&path).unwrap().file_type();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            let value = if ft.is_dir() {
                stack.push(path);
                b"<dir>".to_vec()
            } else if ft.is_symlink() {
                [b"-> ".as_slice(), std::fs::read_link(&path).unwrap().as_os_str().as_bytes()].concat()
            } else {
                std::fs::read(&path).unwrap()
            };
            out.insert(rel, value);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn names(listing: &Value) -> Vec<String> {
    listing["entries"].as_array().unwrap().iter().map(|e| e["fileName"].as_str().unwrap().to_owned()).collect()
}

macro_rules! as_root_and_unprivileged {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn as_root() {
                super::$scenario(super::Who::root())
            }
            #[test]
            fn unprivileged() {
                super::$scenario(super::Who::user())
            }
        }
    )*};
}

as_root_and_unprivileged!(
    symlink_out_of_the_writable_root,
    dotdot_out_of_the_writable_root,
    symlink_swapped_during_operations,
    preexisting_hard_link,
    proc_root_and_cwd_traversal,
    protected_metadata,
    missing_protected_metadata,
    denied_entries_stay_hidden,
    device_nodes,
    non_utf8_names,
    long_paths,
);

// ------------------------------------------------------------------------------------
// 1. Symlink out of a writable root
// ------------------------------------------------------------------------------------

fn symlink_out_of_the_writable_root(who: Who) {
    let t = Tree::new();
    std::fs::create_dir(t.ws.join("real")).unwrap();
    std::fs::write(t.ws.join("real/src.txt"), b"src").unwrap();
    symlink(&t.outside, t.ws.join("link")).unwrap();
    symlink(t.outside.join("o.txt"), t.ws.join("flink")).unwrap();
    let mut fx = t.serve(who);
    let (ws, out) = (fx.t.ws.clone(), fx.t.outside.clone());

    // Control: without a sandbox this user can write through the link.
    fx.direct_ok("fs/writeFile", write(&ws.join("link/direct.txt"), b"d"));
    assert_eq!(std::fs::read(out.join("direct.txt")).unwrap(), b"d");
    std::fs::remove_file(out.join("direct.txt")).unwrap();

    let before = snapshot(&out);
    fx.write_refused("fs/writeFile", write(&ws.join("link/w.txt"), b"x"));
    fx.write_refused("fs/writeFile", write(&ws.join("flink"), b"x"));
    fx.write_refused("fs/createDirectory", json!({"path": uri(&ws.join("link/d/e")), "recursive": true}));
    fx.write_refused("fs/createDirectory", json!({"path": uri(&ws.join("link/d")), "recursive": false}));
    fx.write_refused("fs/remove", json!({"path": uri(&ws.join("link/o.txt")), "recursive": false, "force": false}));
    // A trailing slash makes the kernel follow the link: this targets `outside` itself.
    fx.write_refused("fs/remove", json!({"path": format!("{}/", uri(&ws.join("link"))), "recursive": true, "force": false}));
    fx.write_refused("fs/copy", copy(&ws.join("real/src.txt"), &ws.join("link/c.txt"), false));
    fx.write_refused("fs/copy", copy(&ws.join("real"), &ws.join("link/tree"), true));
    assert_eq!(snapshot(&out), before, "something was written outside through a symlink");

    // Controls inside the root, and removing a link removes the link, not its target.
    fx.ok("fs/writeFile", write(&ws.join("real/ok.txt"), b"ok"));
    fx.ok("fs/copy", copy(&ws.join("real/src.txt"), &ws.join("real/c.txt"), false));
    fx.ok("fs/createDirectory", json!({"path": uri(&ws.join("real/d/e"))}));
    assert_eq!(std::fs::read(ws.join("real/ok.txt")).unwrap(), b"ok");
    assert_eq!(std::fs::read(ws.join("real/c.txt")).unwrap(), b"src");
    assert!(ws.join("real/d/e").is_dir());
    fx.ok("fs/remove", json!({"path": uri(&ws.join("flink"))}));
    fx.ok("fs/remove", json!({"path": uri(&ws.join("link")), "recursive": true}));
    assert!(!exists(&ws.join("flink")) && !exists(&ws.join("link")));
    assert_eq!(snapshot(&out), before, "removing a link touched its target");
}

// ------------------------------------------------------------------------------------
// 2. `..` out of the writable root
// ------------------------------------------------------------------------------------

fn dotdot_out_of_the_writable_root(who: Who) {
    let t = Tree::new();
    std::fs::create_dir(t.ws.join("real")).unwrap();
    std::fs::write(t.ws.join("src.txt"), b"src").unwrap();
    let mut fx = t.serve(who);
    let (ws, out, root) = (fx.t.ws.clone(), fx.t.outside.clone(), fx.t.root.clone());
    let w = uri(&ws);

    // Control: unsandboxed, `..` does lead out and this user may write there.
    fx.direct_ok("fs/writeFile", write_uri(&format!("{w}/../outside/direct.txt"), b"d"));
    assert!(out.join("direct.txt").exists());
    std::fs::remove_file(out.join("direct.txt")).unwrap();

    let before = (snapshot(&out), std::fs::read_dir(&root).unwrap().count());
    // Dot segments are removed while parsing the URI (plain and percent-encoded), so
    // these arrive as paths in `outside`; `%2F` hides the slashes from the URI parser,
    // so that one reaches the kernel with its `..` intact.
    for target in [
        format!("{w}/../outside/dd1.txt"),
        format!("{w}/real/%2E%2E/%2e%2e/outside/dd2.txt"),
        format!("{w}/real%2F..%2F..%2Foutside%2Fdd3.txt"),
        format!("{w}/../dd4.txt"),
    ] {
        fx.write_refused("fs/writeFile", write_uri(&target, b"x"));
    }
    let src = uri(&ws.join("src.txt"));
    for dst in [format!("{w}/../outside/dd5.txt"), format!("{w}/real%2F..%2F..%2Foutside%2Fdd6.txt")] {
        fx.write_refused("fs/copy", json!({"sourcePath": src, "destinationPath": dst, "recursive": false}));
    }
    fx.write_refused("fs/createDirectory", json!({"path": format!("{w}/real%2F..%2F..%2Fdd7")}));
    assert_eq!((snapshot(&out), std::fs::read_dir(&root).unwrap().count()), before, "`..` wrote outside the root");

    // Controls: `..` that stays inside the root works.
    fx.ok("fs/writeFile", write_uri(&format!("{w}/real/../in1.txt"), b"1"));
    fx.ok("fs/writeFile", write_uri(&format!("{w}/real%2F..%2Fin2.txt"), b"2"));
    fx.ok("fs/copy", json!({"sourcePath": src, "destinationPath": format!("{w}/real%2F..%2Fin3.txt"), "recursive": false}));
    for f in ["in1.txt", "in2.txt", "in3.txt"] {
        assert!(ws.join(f).is_file(), "{f}");
    }
}

// ------------------------------------------------------------------------------------
// 3. A path swapped between a directory and a symlink while requests run
// ------------------------------------------------------------------------------------

fn symlink_swapped_during_operations(who: Who) {
    let t = Tree::new();
    // `swap` and `swapalt` exchange places atomically (RENAME_EXCHANGE): one is a real
    // directory in the workspace, the other a symlink to `outside`. Likewise a file and a
    // symlink to `outside/o.txt`.
    std::fs::create_dir(t.ws.join("swap")).unwrap();
    symlink(&t.outside, t.ws.join("swapalt")).unwrap();
    std::fs::write(t.ws.join("fswap"), b"mine").unwrap();
    symlink(t.outside.join("o.txt"), t.ws.join("fswapalt")).unwrap();
    std::fs::write(t.ws.join("src.txt"), b"src").unwrap();
    let mut fx = t.serve(who);
    let (ws, out) = (fx.t.ws.clone(), fx.t.outside.clone());
    let before = snapshot(&out);

    // Deterministic controls before the race: the real dir takes writes, the link does not.
    fx.ok("fs/writeFile", write(&ws.join("swap/before.txt"), b"b"));
    fx.write_refused("fs/writeFile", write(&ws.join("swapalt/before.txt"), b"b"));

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps, ws) = (stop.clone(), swaps.clone(), ws.clone());
        std::thread::spawn(move || {
            let exchange = |a: &str, b: &str| {
                let flags = nix::fcntl::RenameFlags::RENAME_EXCHANGE;
                nix::fcntl::renameat2(None, &ws.join(a), None, &ws.join(b), flags).unwrap();
            };
            while !stop.load(Ordering::Relaxed) {
                exchange("swap", "swapalt");
                exchange("fswap", "fswapalt");
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while swaps.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }

    // Pipelined batches, so requests overlap with each other and with the swaps.
    let mut succeeded: Vec<String> = Vec::new();
    let mut refused = 0;
    for batch in 0..10 {
        let mut pending = Vec::new();
        for i in 0..24 {
            let n = format!("{batch}-{i}");
            let (method, params, name) = match i % 4 {
                0 | 1 => ("fs/writeFile", write(&ws.join(format!("swap/w{n}")), b"w"), format!("w{n}")),
                2 => ("fs/copy", copy(&ws.join("src.txt"), &ws.join(format!("swap/c{n}")), false), format!("c{n}")),
                _ => ("fs/createDirectory", json!({"path": uri(&ws.join(format!("swap/d{n}/sub")))}), format!("d{n}")),
            };
            pending.push((fx.send_sandboxed(method, params), name));
            let through_file = write(&ws.join("fswap"), b"overwritten");
            pending.push((fx.send_sandboxed("fs/writeFile", through_file), String::new()));
        }
        for (id, name) in pending {
            let response = fx.s.response(id);
            match (error_of(&response), name.is_empty()) {
                (None, false) => succeeded.push(name),
                (None, true) => {}
                (Some(_), _) => refused += 1,
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();

    assert_eq!(snapshot(&out), before, "a request reached `outside` through the swapped link");
    // Whatever succeeded landed in the workspace's real directory, wherever it now is.
    let real = ["swap", "swapalt"].iter().map(|n| ws.join(n)).find(|p| std::fs::symlink_metadata(p).unwrap().is_dir()).unwrap();
    for name in &succeeded {
        assert!(exists(&real.join(name)), "{name} succeeded but is not in the workspace");
    }
    eprintln!("swap race ({}): {} succeeded, {refused} refused, {} swaps", who_name(who), succeeded.len(), swaps.load(Ordering::Relaxed));
}

fn who_name(who: Who) -> &'static str {
    if who.0.is_some() {
        "executor-test"
    } else {
        "root"
    }
}

// ------------------------------------------------------------------------------------
// 4. A hard link that already exists inside the workspace (documented limit)
// ------------------------------------------------------------------------------------

fn preexisting_hard_link(who: Who) {
    let t = Tree::new();
    std::fs::write(t.outside.join("linked.txt"), b"original\n").unwrap();
    std::fs::hard_link(t.outside.join("linked.txt"), t.ws.join("hl")).unwrap();
    std::fs::hard_link(t.secret.join("s.txt"), t.ws.join("hl-secret")).unwrap();
    symlink(t.outside.join("linked.txt"), t.ws.join("sl")).unwrap();
    let mut fx = t.serve(who);
    let (ws, out) = (fx.t.ws.clone(), fx.t.outside.clone());
    let ws_uri = |name: &str| uri(&ws.join(name));

    // Contrast: the same file through a symlink is refused (path checks see `outside`).
    fx.write_refused("fs/writeFile", write(&ws.join("sl"), b"via symlink\n"));
    // A hard link is the same inode under a name inside the writable root: the mounts
    // and Landlock only see that path, so the write goes through to the outside file.
    fx.ok("fs/writeFile", write(&ws.join("hl"), b"changed\n"));
    assert_eq!(std::fs::read(out.join("linked.txt")).unwrap(), b"changed\n");
    // Likewise a denied file is readable through a hard link in a readable place.
    assert_eq!(fx.read_sandboxed(&ws_uri("hl-secret")).unwrap(), FILE_SECRET);
    assert!(fx.read_sandboxed(&uri(&fx.t.secret.join("s.txt"))).is_err(), "the denied path itself stays unreadable");
    // Removing the link removes only the workspace's name.
    fx.ok("fs/remove", json!({"path": ws_uri("hl")}));
    assert_eq!(std::fs::read(out.join("linked.txt")).unwrap(), b"changed\n");

    // The fs methods cannot make such a link: copy makes a new inode.
    fx.ok("fs/copy", copy(&out.join("linked.txt"), &ws.join("copied.txt"), false));
    let (a, b) = (std::fs::metadata(out.join("linked.txt")).unwrap(), std::fs::metadata(ws.join("copied.txt")).unwrap());
    assert_ne!((a.dev(), a.ino()), (b.dev(), b.ino()));
    fx.ok("fs/writeFile", write(&ws.join("copied.txt"), b"copy changed\n"));
    assert_eq!(std::fs::read(out.join("linked.txt")).unwrap(), b"changed\n");
}

// ------------------------------------------------------------------------------------
// 6. /proc/self/root, /proc/1/root, /proc/<executor>/cwd and environ
// ------------------------------------------------------------------------------------

fn proc_root_and_cwd_traversal(who: Who) {
    let mut fx = Tree::new().serve(who);
    let (out, secret) = (fx.t.outside.clone(), fx.t.secret.clone());
    let pid = fx.s.child.id();
    let (o, s) = (out.display().to_string(), secret.display().to_string());

    // Controls: unsandboxed, these paths do reach the executor's cwd, environment and
    // the host's files.
    let direct = fx.direct_ok("fs/readFile", json!({"path": format!("file:///proc/{pid}/cwd/s.txt")}));
    assert_eq!(unb64(direct["dataBase64"].as_str().unwrap()), FILE_SECRET);
    let direct = fx.direct_ok("fs/readFile", json!({"path": format!("file:///proc/{pid}/environ")}));
    assert!(contains(&unb64(direct["dataBase64"].as_str().unwrap()), ENV_SECRET.as_bytes()));
    let listing = fx.direct_ok("fs/readDirectory", json!({"path": "file:///proc"}));
    assert!(names(&listing).contains(&pid.to_string()));

    // In the sandbox /proc/self is the sandbox's own process, whose root is the sandbox's
    // view: readable roots read, denied ones stay masked.
    // (readable, denied, not writable) paths reached through the sandbox's own /proc;
    // the helper's cwd is the workspace, so `cwd/..` is the tree's root (`%2F` keeps the
    // URI parser from removing that `..`).
    let through = |base: &str| (format!("{base}{o}/o.txt"), format!("{base}{s}/s.txt"), format!("{base}{o}/proc-w.txt"));
    let cwd = |rel: &str| format!("/proc/self/cwd%2F..%2F{rel}");
    let cases = [through("/proc/self/root"), (cwd("outside/o.txt"), cwd("secret/s.txt"), cwd("outside/proc-w.txt"))];
    for (readable, denied, target) in cases {
        assert_eq!(fx.read_sandboxed(&format!("file://{readable}")), Ok(b"outside\n".to_vec()), "{readable}");
        let leaked = fx.read_sandboxed(&format!("file://{denied}"));
        assert!(leaked.is_err(), "{denied}: {leaked:?}");
        fx.write_refused("fs/writeFile", write_uri(&format!("file://{target}"), b"x"));
    }
    // PID 1 is the inner stage. It is non-dumpable, so nothing in the sandbox can reach
    // its descriptors, memory or root through /proc/1.
    for path in [format!("/proc/1/root{o}/o.txt"), "/proc/1/environ".to_string()] {
        assert_eq!(fx.refused("fs/readFile", json!({"path": format!("file://{path}")})), (-32600, DENIED.to_owned()), "{path}");
    }
    // The executor is not in the sandbox's PID namespace.
    let listing = fx.ok("fs/readDirectory", json!({"path": "file:///proc"}));
    assert!(!names(&listing).contains(&pid.to_string()), "the executor's pid is visible in the sandbox");
    for path in [format!("/proc/{pid}/cwd/s.txt"), format!("/proc/{pid}/environ"), format!("/proc/{pid}/root{s}/s.txt")] {
        let (code, message) = fx.refused("fs/readFile", json!({"path": format!("file://{path}")}));
        assert_eq!((code, message.as_str()), (-32004, "No such file or directory (os error 2)"), "{path}");
    }
    let (code, _) = fx.refused("fs/readDirectory", json!({"path": format!("file:///proc/{pid}/cwd")}));
    assert_eq!(code, -32004);
    let (code, _) = fx.refused("fs/writeFile", write_uri(&format!("file:///proc/{pid}/cwd/pw.txt"), b"x"));
    assert_eq!(code, -32004);
    // Environments inside carry nothing of the executor's.
    if let Ok(env) = fx.read_sandboxed("file:///proc/self/environ") {
        assert!(!contains(&env, ENV_SECRET.as_bytes()), "/proc/self/environ leaked the executor's environment");
    }
    assert_eq!(std::fs::read_dir(&secret).unwrap().count(), 1, "something was written into the executor's cwd");
    assert!(!out.join("proc-w.txt").exists());
}

// ------------------------------------------------------------------------------------
// 7. Protected metadata inside the writable root
// ------------------------------------------------------------------------------------

const PROTECTED: [&str; 6] = [".git", ".hg", ".svn", ".codex", ".agents", ".aws"];

fn protected_metadata(who: Who) {
    let t = Tree::new();
    for name in PROTECTED {
        std::fs::create_dir_all(t.ws.join(name).join("hooks")).unwrap();
        std::fs::write(t.ws.join(name).join("config"), b"[core]\n").unwrap();
    }
    std::fs::create_dir_all(t.ws.join("staging/hooks")).unwrap();
    std::fs::write(t.ws.join("staging/hooks/pre-commit"), b"#!/bin/sh\necho pwned\n").unwrap();
    let mut fx = t.serve(who);
    let ws = fx.t.ws.clone();
    let before = snapshot(&ws);
    let meta = |name: &str, rest: &str| ws.join(name).join(rest);

    for name in PROTECTED {
        fx.write_refused("fs/writeFile", write(&meta(name, "config"), b"[core]\nfsmonitor=evil\n"));
        fx.write_refused("fs/writeFile", write(&meta(name, "hooks/pre-commit"), b"evil"));
        fx.write_refused("fs/createDirectory", json!({"path": uri(&meta(name, "hooks/x"))}));
        fx.write_refused("fs/remove", json!({"path": uri(&meta(name, "config"))}));
        fx.refused("fs/remove", json!({"path": uri(&ws.join(name)), "recursive": true, "force": true}));
        fx.write_refused("fs/copy", copy(&ws.join("staging/hooks/pre-commit"), &meta(name, "copied"), false));
        fx.write_refused("fs/copy", copy(&ws.join("staging"), &ws.join(name), true));
    }
    assert_eq!(snapshot(&ws), before, "protected metadata changed");
    // Controls: reading works, and a sibling is writable.
    assert_eq!(fx.read_sandboxed(&uri(&meta(".git", "config"))).unwrap(), b"[core]\n");
    fx.ok("fs/writeFile", write(&ws.join("sibling.txt"), b"ok"));
    fx.ok("fs/copy", copy(&ws.join("staging"), &ws.join("git-like"), true));
    assert!(ws.join("git-like/hooks/pre-commit").is_file() && ws.join("sibling.txt").is_file());
}

/// A protected name that does not exist in the workspace cannot be created by a request
/// either (the inner stage's create guard answers EROFS), whatever the method; and a
/// name that appears on the host after the warm helper started is protected from the
/// next request on.
fn missing_protected_metadata(who: Who) {
    let t = Tree::new();
    std::fs::create_dir_all(t.ws.join("staging/hooks")).unwrap();
    std::fs::write(t.ws.join("staging/hooks/pre-commit"), b"#!/bin/sh\n").unwrap();
    let mut fx = t.serve(who);
    let ws = fx.t.ws.clone();
    fx.ok("fs/getMetadata", json!({"path": uri(&ws)}));

    // Appears on the host after the helper started: protected for the next request.
    std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
    std::fs::write(ws.join(".git/config"), b"[core]\n").unwrap();
    if let Some(ids) = fx.who.0 {
        chown_tree(ids, &ws.join(".git"));
    }
    fx.write_refused("fs/writeFile", write(&ws.join(".git/config"), b"evil"));
    fx.write_refused("fs/writeFile", write(&ws.join(".git/hooks/pre-commit"), b"evil"));
    assert_eq!(std::fs::read(ws.join(".git/config")).unwrap(), b"[core]\n");

    // Missing names: every way of creating one is refused and leaves nothing behind.
    fx.write_refused("fs/copy", copy(&ws.join("staging"), &ws.join(".agents"), true));
    fx.write_refused("fs/createDirectory", json!({"path": uri(&ws.join(".codex/sub"))}));
    fx.write_refused("fs/createDirectory", json!({"path": uri(&ws.join(".hg"))}));
    fx.write_refused("fs/writeFile", write(&ws.join(".aws"), b"[default]\n"));
    fx.write_refused("fs/copy", copy(&ws.join("staging/hooks/pre-commit"), &ws.join(".svn"), false));
    for name in [".agents", ".codex", ".hg", ".aws", ".svn"] {
        assert!(std::fs::symlink_metadata(ws.join(name)).is_err(), "{name} was created");
    }
    // Controls: the same requests with other names work.
    fx.ok("fs/copy", copy(&ws.join("staging"), &ws.join("agents"), true));
    fx.ok("fs/createDirectory", json!({"path": uri(&ws.join("codex/sub"))}));
    fx.ok("fs/writeFile", write(&ws.join("aws"), b"[default]\n"));
    assert!(ws.join("agents/hooks/pre-commit").is_file() && ws.join("codex/sub").is_dir());
    assert_eq!(std::fs::read(ws.join("aws")).unwrap(), b"[default]\n");
}

// ------------------------------------------------------------------------------------
// 8. Reads and listings of `none` entries
// ------------------------------------------------------------------------------------

fn denied_entries_stay_hidden(who: Who) {
    let mut fx = Tree::new().serve(who);
    let (ws, out) = (fx.t.ws.clone(), fx.t.outside.clone());
    // (denied dir, its parent root, a file inside): inside a writable and a readable root.
    let cases = [(fx.t.ws_denied.clone(), ws.clone(), "key.txt"), (fx.t.outside_denied.clone(), out.clone(), "d.txt")];
    for (denied, parent, file) in cases {
        let f = denied.join(file);
        // Control: unsandboxed the same user reads it.
        let direct = fx.direct_ok("fs/readFile", json!({"path": uri(&f)}));
        assert_eq!(unb64(direct["dataBase64"].as_str().unwrap()), FILE_SECRET);

        // The mask is an empty mode-000 tmpfs: every access is refused, nothing listed.
        let denied_err = (-32600, DENIED.to_owned());
        assert_eq!(fx.refused("fs/readFile", json!({"path": uri(&f)})), denied_err);
        assert_eq!(fx.refused("fs/readDirectory", json!({"path": uri(&denied)})), denied_err);
        assert_eq!(fx.refused("fs/walk", walk(&denied)), denied_err);
        assert_eq!(fx.refused("fs/getMetadata", json!({"path": uri(&f)})), denied_err);
        assert_eq!(fx.refused("fs/canonicalize", json!({"path": uri(&f)})), denied_err);
        // Walking the parent shows the siblings (and the mask) but nothing below it.
        let listing = fx.ok("fs/walk", walk(&parent));
        let paths: Vec<&str> = listing["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
        assert!(!paths.iter().any(|p| p.starts_with(&format!("{}/", uri(&denied)))), "{paths:?}");
        assert!(paths.contains(&uri(&denied).as_str()) && paths.len() >= 2, "{paths:?}");
        let (stolen, stolen_dir) = (ws.join(format!("stolen-{file}")), ws.join(format!("stolen-dir-{file}")));
        assert_eq!(fx.refused("fs/copy", copy(&f, &stolen, false)), denied_err);
        assert_eq!(fx.refused("fs/copy", copy(&denied, &stolen_dir, true)), denied_err);
        assert!(!exists(&stolen) && !exists(&stolen_dir), "a refused copy left a destination behind");
        // Writes into a denied directory are refused even inside the writable root.
        assert_eq!(fx.refused("fs/writeFile", write(&denied.join("new.txt"), b"x")), denied_err);
        assert_eq!(fx.refused("fs/createDirectory", json!({"path": uri(&denied.join("newdir"))})), denied_err);
        assert_eq!(fx.refused("fs/remove", json!({"path": uri(&f), "force": false})), denied_err);
        assert_eq!(std::fs::read(&f).unwrap(), FILE_SECRET);
        assert!(!denied.join("new.txt").exists() && !denied.join("newdir").exists());
    }
    // A denied file inside the writable root is /dev/null bound over it: unreadable, not
    // a regular file to copy, not writable, and not removable (a mount point).
    let file = fx.t.ws_denied_file.clone();
    assert_eq!(fx.refused("fs/readFile", json!({"path": uri(&file)})), (-32600, DENIED.to_owned()));
    let (code, message) = fx.refused("fs/copy", copy(&file, &ws.join("stolen-env"), false));
    assert_eq!(code, -32600);
    assert!(message.starts_with("fs/copy only supports regular files"), "{message}");
    assert_eq!(fx.refused("fs/writeFile", write(&file, b"x")), (-32600, DENIED.to_owned()));
    let (code, message) = fx.refused("fs/remove", json!({"path": uri(&file), "force": false}));
    assert_eq!((code, message.as_str()), (-32603, "Device or resource busy (os error 16)"));
    assert_eq!(std::fs::read(&file).unwrap(), FILE_SECRET);
    assert!(!exists(&ws.join("stolen-env")));
    // Nothing in the workspace but the denied entries themselves holds their data.
    let leaked: Vec<PathBuf> = snapshot(&ws)
        .into_iter()
        .filter(|(rel, data)| {
            let own = rel.starts_with("private") || rel == Path::new("secret.env");
            !own && contains(data, FILE_SECRET)
        })
        .map(|(rel, _)| rel)
        .collect();
    assert!(leaked.is_empty(), "denied data copied into the workspace: {leaked:?}");
    // A denied path that appears on the host after the helper started is masked for the
    // next request, like one that existed from the start.
    std::fs::create_dir(ws.join("later")).unwrap();
    std::fs::write(ws.join("later/key.txt"), FILE_SECRET).unwrap();
    if let Some(ids) = fx.who.0 {
        chown_tree(ids, &ws.join("later"));
    }
    assert_eq!(fx.refused("fs/readFile", json!({"path": uri(&ws.join("later/key.txt"))})), (-32600, DENIED.to_owned()));
    assert_eq!(fx.refused("fs/readDirectory", json!({"path": uri(&ws.join("later"))})), (-32600, DENIED.to_owned()));

    // Control: the workspace's own files are listed and read.
    let listing = fx.ok("fs/readDirectory", json!({"path": uri(&ws)}));
    assert!(names(&listing).contains(&"private".to_owned()));
}

// ------------------------------------------------------------------------------------
// 9. Device nodes
// ------------------------------------------------------------------------------------

/// A block device of the host (e.g. /dev/vda); opened for reading only.
fn host_block_device() -> PathBuf {
    std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_block_device()))
        .expect("the host has no block device under /dev")
}

fn device_nodes(who: Who) {
    let mut fx = Tree::new().serve(who);
    let ws = fx.t.ws.clone();
    symlink("/dev/zero", ws.join("zero-link")).unwrap();
    let block = host_block_device();
    let tag = format!("executor-fsx-{}", std::process::id());
    let (in_dev, in_shm) = (PathBuf::from(format!("/dev/{tag}")), PathBuf::from(format!("/dev/shm/{tag}")));

    // Control: unsandboxed, the host's /dev/shm takes a new file from this user.
    fx.direct_ok("fs/writeFile", write(&in_shm, b"direct"));
    assert_eq!(std::fs::read(&in_shm).unwrap(), b"direct");
    std::fs::remove_file(&in_shm).unwrap();

    // Reads of devices fail without reading (only regular files are read), sandboxed
    // or not; host block devices do not even exist in the sandbox's /dev.
    let (code, _) = fx.refused("fs/readFile", json!({"path": uri(&block)}));
    assert_eq!(code, -32004, "{block:?} is visible in the sandbox");
    for dev in ["/dev/zero", "/dev/urandom"] {
        let (code, message) = fx.refused("fs/readFile", json!({"path": format!("file://{dev}")}));
        assert_eq!((code, message), (-32600, format!("path `{dev}` is not a file")));
        let (code, message) = fx.s.call_err("fs/readFile", json!({"path": format!("file://{dev}")}));
        assert_eq!((code, message), (-32600, format!("path `{dev}` is not a file")));
    }
    let (code, _) = fx.refused("fs/readFile", json!({"path": uri(&ws.join("zero-link"))}));
    assert_eq!(code, -32600);
    // Copy refuses any source that is not a regular file, directory or symlink, so it
    // can neither stream a device nor duplicate a device node.
    for dev in ["/dev/zero", "/dev/urandom", "/dev/null"] {
        let dst = ws.join(format!("copy-of-{}", &dev[5..]));
        let params = copy(Path::new(dev), &dst, false);
        let expected = format!("fs/copy only supports regular files, directories and symlinks: `{dev}`");
        assert_eq!(fx.refused("fs/copy", params.clone()), (-32600, expected.clone()));
        assert_eq!(fx.s.call_err("fs/copy", params), (-32600, expected));
        assert!(!exists(&dst));
    }
    // A pseudo file that reports size 0 but reads without end (/proc/self/pagemap is
    // hundreds of GiB): the copy stops and leaves nothing behind.
    let dst = ws.join("pagemap");
    let (code, message) = fx.refused("fs/copy", copy(Path::new("/proc/self/pagemap"), &dst, false));
    assert_eq!(code, -32600, "{message}");
    assert!(message.contains("more than its reported size"), "{message}");
    assert!(!exists(&dst));
    let (code, _) = fx.s.call_err("fs/copy", copy(Path::new("/proc/self/pagemap"), &dst, false));
    assert_eq!(code, -32600);
    assert!(!exists(&dst));
    // Control: a pseudo file of modest length is copied in full.
    fx.ok("fs/copy", copy(Path::new("/proc/self/status"), &ws.join("status"), false));
    assert!(std::fs::read_to_string(ws.join("status")).unwrap().contains("Pid:"));

    // Writes under /dev land in the sandbox's private /dev (a tmpfs), never on the host.
    fx.ok("fs/writeFile", write(&in_shm, b"sandboxed"));
    fx.ok("fs/writeFile", write(&in_dev, b"sandboxed"));
    assert!(!exists(&in_shm) && !exists(&in_dev), "a sandboxed write reached the host's /dev");
    assert_eq!(fx.read_sandboxed(&uri(&in_dev)).unwrap(), b"sandboxed", "it is the sandbox's own /dev");
    let (code, message) = fx.refused("fs/writeFile", write(Path::new("/dev/full"), b"x"));
    assert_eq!((code, message.as_str()), (-32603, "No space left on device (os error 28)"));
    assert!(std::fs::symlink_metadata(&block).unwrap().file_type().is_block_device());
}

// ------------------------------------------------------------------------------------
// 10. Non-UTF-8 names
// ------------------------------------------------------------------------------------

fn non_utf8_names(who: Who) {
    let mut fx = Tree::new().serve(who);
    let (ws, root) = (fx.t.ws.clone(), fx.t.root.clone());
    let w = uri(&ws);
    let host = |raw: &[u8]| ws.join(OsString::from_vec(raw.to_vec()));
    let root_before = snapshot(&root).len() - snapshot(&ws).len();

    fx.ok("fs/writeFile", write_uri(&format!("{w}/nu%FF.txt"), b"raw name"));
    assert_eq!(std::fs::read(host(b"nu\xff.txt")).unwrap(), b"raw name");
    assert_eq!(fx.read_sandboxed(&format!("{w}/nu%FF.txt")).unwrap(), b"raw name");
    let meta = fx.ok("fs/getMetadata", json!({"path": format!("{w}/nu%FF.txt")}));
    assert_eq!(meta["size"], 8);
    // readDirectory names are JSON strings: a non-UTF-8 byte is shown as U+FFFD (lossy).
    let listing = fx.ok("fs/readDirectory", json!({"path": w}));
    assert!(names(&listing).contains(&"nu\u{FFFD}.txt".to_owned()), "{listing}");
    // That lossy name is a different file; nothing was created under it.
    let (code, _) = fx.refused("fs/readFile", json!({"path": format!("{w}/nu%EF%BF%BD.txt")}));
    assert_eq!(code, -32004);
    // walk reports URIs, which keep the raw bytes: they round-trip.
    let listing = fx.ok("fs/walk", walk(&ws));
    let paths: Vec<&str> = listing["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&format!("{w}/nu%FF.txt").as_str()), "{paths:?}");

    // Directories, copies and names with a newline (the helper's framing is NDJSON).
    fx.ok("fs/createDirectory", json!({"path": format!("{w}/d%FE")}));
    fx.ok("fs/writeFile", write_uri(&format!("{w}/d%FE/in%FF"), b"x"));
    fx.ok("fs/writeFile", write_uri(&format!("{w}/line%0Abreak"), b"nl"));
    fx.ok("fs/copy", json!({"sourcePath": format!("{w}/d%FE"), "destinationPath": format!("{w}/copy%FD"), "recursive": true}));
    assert_eq!(std::fs::read(host(b"copy\xfd/in\xff")).unwrap(), b"x");
    assert_eq!(std::fs::read(ws.join("line\nbreak")).unwrap(), b"nl");
    let listing = fx.ok("fs/readDirectory", json!({"path": w}));
    assert!(names(&listing).contains(&"line\nbreak".to_owned()));
    // Overlong UTF-8 for `..` is just a name, not a traversal.
    fx.ok("fs/createDirectory", json!({"path": format!("{w}/%C0%AE%C0%AE")}));
    fx.ok("fs/writeFile", write_uri(&format!("{w}/%C0%AE%C0%AE/x.txt"), b"o"));
    assert!(host(b"\xc0\xae\xc0\xae/x.txt").is_file());

    for raw in ["nu%FF.txt", "d%FE", "copy%FD", "line%0Abreak", "%C0%AE%C0%AE"] {
        fx.ok("fs/remove", json!({"path": format!("{w}/{raw}"), "force": false}));
    }
    assert_eq!(snapshot(&ws).len(), 3, "only the tree's own entries are left: {:?}", snapshot(&ws));
    assert_eq!(snapshot(&root).len() - snapshot(&ws).len(), root_before, "something was created outside the workspace");
}

// ------------------------------------------------------------------------------------
// 11. Very long paths
// ------------------------------------------------------------------------------------

/// PATH_MAX includes the terminating NUL.
const PATH_MAX: usize = 4096;

fn long_paths(who: Who) {
    let mut fx = Tree::new().serve(who);
    let ws = fx.t.ws.clone();
    let too_long = "e".repeat(256);
    let (code, message) = fx.refused("fs/writeFile", write(&ws.join(&too_long), b"x"));
    assert_eq!((code, message.as_str()), (-32603, "File name too long (os error 36)"));
    fx.ok("fs/writeFile", write(&ws.join("e".repeat(255)), b"x"));

    // A deep tree up to exactly PATH_MAX - 1 bytes works; one byte more does not.
    let mut deep = ws.clone();
    while deep.as_os_str().len() + 101 < PATH_MAX - 60 {
        deep.push("d".repeat(100));
    }
    fx.ok("fs/createDirectory", json!({"path": uri(&deep)}));
    let name_len = PATH_MAX - 1 - deep.as_os_str().len() - 1;
    let longest = deep.join("f".repeat(name_len));
    assert_eq!(longest.as_os_str().len(), PATH_MAX - 1);
    fx.ok("fs/writeFile", write(&longest, b"deep"));
    assert_eq!(fx.read_sandboxed(&uri(&longest)).unwrap(), b"deep");
    let one_more = deep.join("f".repeat(name_len + 1));
    for (method, params) in [
        ("fs/writeFile", write(&one_more, b"x")),
        ("fs/readFile", json!({"path": uri(&one_more)})),
        ("fs/createDirectory", json!({"path": uri(&one_more)})),
        ("fs/getMetadata", json!({"path": uri(&one_more)})),
        ("fs/copy", copy(&longest, &one_more, false)),
        ("fs/writeFile", write(&ws.join("x/".repeat(60_000)), b"x")),
    ] {
        let (code, message) = fx.refused(method, params);
        assert_eq!((code, message.as_str()), (-32603, "File name too long (os error 36)"), "{method}");
    }
    let listing = fx.ok("fs/walk", json!({"path": uri(&ws), "options": {"maxDepth": 100, "maxDirectories": 1000, "maxEntries": 1000, "followDirectorySymlinks": false}}));
    assert!(listing["entries"].as_array().unwrap().iter().any(|e| e["path"] == json!(uri(&longest))));
    // The server (and its helper) keep serving, and the tree is removable.
    fx.ok("fs/remove", json!({"path": uri(&ws.join("d".repeat(100))), "force": false}));
    assert!(!ws.join("d".repeat(100)).exists());
    assert_eq!(std::fs::read(ws.join("e".repeat(255))).unwrap(), b"x");
}
