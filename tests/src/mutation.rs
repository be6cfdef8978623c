//! Valid requests for every method and the mutations the no-panic tests apply to them
//! (issue 12, item 5): `no_panic_decoders` feeds them to the decoders in-process,
//! `no_panic_server` sends them to the real binary.
//!
//! Mutations replace, remove or add members anywhere in the params (the sandbox context
//! included) with JSON that is often almost right: extreme numbers, wrong types, URIs
//! that are malformed, non-local or inside the scratch tree. Requests whose effect could
//! leave the scratch tree are not sent to a real server: see [`stays_in_scratch`].

use std::path::{Component, Path};

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// `file:` URI of `path` below `scratch`.
fn at(scratch: &Path, path: &str) -> String {
    format!("file://{}/{path}", scratch.display())
}

/// A workspace-write context on `scratch` with a denied subdirectory and a glob, the
/// shape Codex sends.
pub fn sandbox(scratch: &Path) -> Value {
    json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
        {"path": {"type": "special", "value": {"kind": "current_working_directory"}}, "access": "write"},
        {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": "ws"}}, "access": "write"},
        {"path": {"type": "path", "path": at(scratch, "denied")}, "access": "none"},
        {"path": {"type": "glob_pattern", "pattern": "**/*.env"}, "access": "deny", "missing_path_behavior": "skip"}],
        "glob_scan_max_depth": 3}, "network": "restricted"},
        "cwd": format!("file://{}", scratch.display()), "workspaceRoots": [format!("file://{}", scratch.display())],
        "windowsSandboxLevel": "disabled"})
}

/// One valid request per method (fs methods with and without a sandbox), as
/// `(method, params)`. Paths are below `scratch`; the process ids `done` (a closed
/// process) and handle ids `h` are what the tests set up first.
pub fn requests(scratch: &Path) -> Vec<(&'static str, Value)> {
    let file = at(scratch, "f.txt");
    let mut list = vec![
        ("initialize", json!({"clientName": "mutant", "resumeSessionId": null})),
        ("environment/info", json!({})),
        ("environment/status", Value::Null),
        (
            "process/start",
            json!({"processId": "p", "argv": ["echo", "x"], "cwd": format!("file://{}", scratch.display()),
            "env": {"A": "1"}, "tty": false, "pipeStdin": false, "arg0": null,
            "envPolicy": {"inherit": "core", "ignoreDefaultExcludes": false, "exclude": ["*KEY*"], "set": {"B": "2"}, "includeOnly": []},
            "sandbox": sandbox(scratch), "executorLimits": {"memoryBytes": 1073741824, "maxProcs": 64, "cpuPercent": 50, "wallSeconds": 30}}),
        ),
        ("process/read", json!({"processId": "done", "afterSeq": 0, "maxBytes": 1024, "waitMs": 0})),
        ("process/write", json!({"processId": "done", "chunk": "aGkK", "writeId": "w1"})),
        ("process/signal", json!({"processId": "done", "signal": "interrupt"})),
        ("process/terminate", json!({"processId": "done"})),
        ("sandbox/report", json!({"processId": "done"})),
        ("fs/readBlock", json!({"handleId": "h", "offset": 0, "len": 16})),
        ("fs/writeBlock", json!({"handleId": "h", "offset": 0, "chunk": "aGkK"})),
        ("fs/close", json!({"handleId": "h"})),
        ("fs/watchMissing", json!({"watchId": 1, "missing": [at(scratch, "later")]})),
        (
            "http/request",
            json!({"method": "POST", "url": HTTP_URL, "headers": [{"name": "Content-Type", "value": "application/json"},
            {"name": "X-Env", "value": "v-", "valueEnvVar": "PATH"}], "bodyBase64": "e30=", "timeoutMs": 1000,
            "redirectPolicy": "stop", "requestId": "r", "streamResponse": false}),
        ),
    ];
    let fs = [
        ("fs/readFile", json!({"path": file, "followSymlinks": true})),
        ("fs/writeFile", json!({"path": at(scratch, "ws/new.txt"), "dataBase64": "aGVsbG8=", "followSymlinks": null})),
        ("fs/createDirectory", json!({"path": at(scratch, "ws/d/e"), "recursive": true})),
        ("fs/getMetadata", json!({"path": file, "followSymlinks": false})),
        ("fs/canonicalize", json!({"path": at(scratch, "ws/../f.txt")})),
        ("fs/readDirectory", json!({"path": at(scratch, "ws")})),
        (
            "fs/walk",
            json!({"path": at(scratch, "ws"), "options": {"maxDepth": 4, "maxDirectories": 16, "maxEntries": 64, "followDirectorySymlinks": false}}),
        ),
        ("fs/remove", json!({"path": at(scratch, "ws/gone"), "recursive": true, "force": true})),
        ("fs/copy", json!({"sourcePath": file, "destinationPath": at(scratch, "ws/copy.txt"), "recursive": false})),
        ("fs/open", json!({"handleId": "o", "path": file, "mode": "read"})),
    ];
    for (method, params) in fs {
        let mut sandboxed = params.clone();
        sandboxed["sandbox"] = sandbox(scratch);
        list.push((method, params));
        list.push((method, sandboxed));
    }
    list
}

/// URIs: malformed, non-local, inside the scratch tree (some of them escaping it,
/// which the scratch check then keeps from a real server).
fn interesting_uri(scratch: &Path) -> impl Strategy<Value = Value> {
    let uris: Vec<Value> = [
        "",
        "file:",
        "file:///%00",
        "file://otherhost/x",
        "file://u:p@localhost/x",
        "file:///x?q#f",
        "file:///x#f",
        "relative",
        "/native/path",
        "http://example.test/",
        "file://localhost/nonexistent",
    ]
    .iter()
    .map(|s| json!(s))
    .chain(
        [
            "f.txt",
            "ws",
            "ws/x",
            "ws/new dir/y",
            "denied",
            "denied/s",
            "missing/x",
            "ws/%2E%2E",
            "ws/%2Fx",
            "link-ws",
            "link-ws/y",
            "%20a",
            "x%2.txt",
            "ws/./z",
            "f.txt/x",
            "ws/gone",
        ]
        .iter()
        .map(|p| json!(at(scratch, p))),
    )
    .chain([json!(format!("file://{}", scratch.display())), json!(format!("file://localhost{}/f.txt", scratch.display()))])
    .collect();
    proptest::sample::select(uris)
}

/// Strings that are often almost right: words of the protocol, globs, base64 and not,
/// odd characters, URIs.
fn interesting_string(scratch: &Path) -> impl Strategy<Value = Value> {
    let strings: Vec<Value> = [
        "",
        "interrupt",
        "kill",
        "read",
        "replace",
        "managed",
        "restricted",
        "disabled",
        "external",
        "unrestricted",
        "enabled",
        "special",
        "path",
        "glob_pattern",
        "root",
        "minimal",
        "current_working_directory",
        "project_roots",
        "tmpdir",
        "slash_tmp",
        "unknown",
        "write",
        "none",
        "deny",
        "all",
        "core",
        "skip",
        "**",
        "*",
        "[",
        "[!",
        "{a,b}",
        "?",
        "aGVsbG8=",
        "!!not base64",
        "=",
        "\u{0}",
        "é\u{202e}x",
        "../../x",
        "ws",
        "/abs",
    ]
    .iter()
    .map(|s| json!(s))
    .chain([json!("A".repeat(5000))])
    .collect();
    prop_oneof![
        3 => proptest::sample::select(strings),
        1 => interesting_uri(scratch),
        1 => any::<String>().prop_map(Value::String),
    ]
}

/// Numbers at the edges of the types the protocol uses, and any other.
fn interesting_number() -> impl Strategy<Value = Value> {
    let numbers = vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(u32::MAX),
        json!(u32::MAX as u64 + 1),
        json!(9_007_199_254_740_993_u64),
        json!(1.5),
        json!(-0.0),
        json!(1e308),
        json!(64 * 1024 * 1024 + 1),
        json!(86_400_000),
    ];
    prop_oneof![3 => proptest::sample::select(numbers), 1 => any::<i64>().prop_map(|n| json!(n))]
}

/// Leaves that are often almost right.
fn interesting_leaf(scratch: &Path) -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), interesting_number(), interesting_string(scratch),]
}

/// Member names of the protocol, so that added members are often meaningful.
const KEYS: &[&str] = &[
    "processId",
    "argv",
    "cwd",
    "env",
    "tty",
    "pipeStdin",
    "arg0",
    "envPolicy",
    "sandbox",
    "path",
    "dataBase64",
    "followSymlinks",
    "recursive",
    "force",
    "options",
    "maxDepth",
    "handleId",
    "offset",
    "len",
    "chunk",
    "mode",
    "watchId",
    "missing",
    "permissions",
    "type",
    "file_system",
    "entries",
    "access",
    "value",
    "kind",
    "subpath",
    "pattern",
    "network",
    "workspaceRoots",
    "windowsSandboxLevel",
    "glob_scan_max_depth",
    "afterSeq",
    "waitMs",
    "maxBytes",
    "writeId",
    "signal",
    "sourcePath",
    "destinationPath",
    "enforceManagedNetwork",
    "shellSnapshot",
];

/// JSON built from interesting leaves, up to a few levels deep.
pub fn json_value(scratch: &Path) -> impl Strategy<Value = Value> {
    interesting_leaf(scratch).prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// A change at the node reached by following `at` (each step taken modulo the number of
/// children there, stopping at a leaf).
#[derive(Debug, Clone)]
pub enum Mutation {
    /// A new value of the same JSON type (a bool is flipped, a null becomes the string).
    Tweak {
        at: Vec<usize>,
        uri: Value,
        string: Value,
        number: Value,
    },
    Replace {
        at: Vec<usize>,
        with: Value,
    },
    Remove {
        at: Vec<usize>,
    },
    Insert {
        at: Vec<usize>,
        key: &'static str,
        value: Value,
    },
}

/// Mostly changes that keep the shape (so that decoding gets far and the handlers run),
/// some that break it.
pub fn mutation(scratch: &Path) -> impl Strategy<Value = Mutation> {
    // Paths are cut short at leaves; long ones reach deep into the sandbox context.
    let at = || proptest::collection::vec(any::<usize>(), 1..8);
    prop_oneof![
        6 => (at(), interesting_uri(scratch), interesting_string(scratch), interesting_number())
            .prop_map(|(at, uri, string, number)| Mutation::Tweak { at, uri, string, number }),
        2 => (at(), interesting_leaf(scratch)).prop_map(|(at, with)| Mutation::Replace { at, with }),
        1 => (at(), json_value(scratch)).prop_map(|(at, with)| Mutation::Replace { at, with }),
        1 => at().prop_map(|at| Mutation::Remove { at }),
        1 => (at(), proptest::sample::select(KEYS), json_value(scratch)).prop_map(|(at, key, value)| Mutation::Insert { at, key, value }),
    ]
}

/// A request of [`requests`] with one to three mutations applied.
pub fn mutated_request(scratch: &Path) -> impl Strategy<Value = (&'static str, Value)> {
    let requests = requests(scratch);
    (proptest::sample::select(requests), proptest::collection::vec(mutation(scratch), 1..3)).prop_map(
        |((method, mut params), mutations)| {
            for m in &mutations {
                apply(&mut params, m);
            }
            (method, params)
        },
    )
}

fn children(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// Applies `m` to `root`.
pub fn apply(root: &mut Value, m: &Mutation) {
    match m {
        Mutation::Tweak { at, uri, string, number } => {
            let node = descend(root, &steps(root, at, true));
            *node = match node {
                Value::Bool(b) => Value::Bool(!*b),
                Value::Number(_) => number.clone(),
                Value::String(s) if s.starts_with("file:") => uri.clone(),
                Value::String(_) | Value::Null => string.clone(),
                // Paths stop at leaves; an empty container gets a member of its kind.
                Value::Array(_) => json!([string]),
                Value::Object(_) => json!({"path": string}),
            };
        }
        Mutation::Replace { at, with } => *descend(root, &steps(root, at, false)) = with.clone(),
        Mutation::Insert { at, key, value } => match descend(root, &steps(root, at, false)) {
            Value::Object(map) => {
                map.insert((*key).to_owned(), value.clone());
            }
            Value::Array(a) => a.push(value.clone()),
            other => *other = Value::Object(Map::from_iter([((*key).to_owned(), value.clone())])),
        },
        Mutation::Remove { at } => remove(root, &steps(root, at, false)),
    }
}

/// The child indices that `at` leads to, each taken modulo the children there; up to a
/// leaf, and past the end of `at` (taking its steps again) when `to_leaf`.
fn steps(root: &Value, at: &[usize], to_leaf: bool) -> Vec<usize> {
    let turns = if to_leaf { 64 } else { at.len() };
    let mut steps = Vec::new();
    let mut node = root;
    for &step in at.iter().cycle().take(turns) {
        let i = match children(node) {
            0 => break,
            n => step % n,
        };
        steps.push(i);
        node = match node {
            Value::Object(map) => map.values().nth(i).unwrap_or(&Value::Null),
            Value::Array(a) => &a[i],
            _ => break,
        };
    }
    steps
}

/// Removes the node at `steps` from its parent (the whole value for no steps).
fn remove(root: &mut Value, steps: &[usize]) {
    let Some((last, parent)) = steps.split_last() else {
        *root = Value::Null;
        return;
    };
    match descend(root, parent) {
        Value::Object(map) => {
            if let Some(key) = map.keys().nth(*last).cloned() {
                map.remove(&key);
            }
        }
        Value::Array(a) => {
            a.remove(*last);
        }
        _ => {}
    }
}

fn descend<'a>(node: &'a mut Value, steps: &[usize]) -> &'a mut Value {
    // The steps were taken from this very value, so every child exists.
    steps.iter().fold(node, |node, &i| match node {
        Value::Object(map) => map.values_mut().nth(i).expect("a step within the object"),
        Value::Array(a) => &mut a[i],
        leaf => leaf,
    })
}

/// Programs a mutated `process/start` may run: harmless whatever their arguments.
const SAFE_PROGRAMS: &[&str] = &["echo", "true", "false", "/bin/echo", "/bin/true"];
/// Where a program without a `/` may be found: glibc's default path, and the test's own
/// PATH, which `envPolicy` can pass on.
const DEFAULT_PATH: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The only URL an `http/request` sent to a real server may have: loopback port 1, where
/// nothing listens, so the request fails at once without leaving the machine.
pub const HTTP_URL: &str = "http://127.0.0.1:1/mcp";

/// Whether sending `params` to a real server (as root) can only touch `scratch`: every
/// string that the server would read as a `file:` URI names a path below `scratch`
/// without `..`, and a `process/start` runs a harmless program or none at all. Paths in
/// a sandbox context count too: they only grant, but checking them costs little.
pub fn stays_in_scratch(method: &str, params: &Value, scratch: &Path) -> bool {
    let mut strings = Vec::new();
    collect_strings(params, &mut strings);
    let uris_ok = strings.iter().all(|s| match fs_helper::parse_file_uri(s) {
        Ok(path) => path.starts_with(scratch) && path.components().all(|c| !matches!(c, Component::ParentDir)),
        Err(_) => true,
    });
    let http_ok = method != "http/request" || params.get("url").and_then(Value::as_str).is_none_or(|url| url == HTTP_URL);
    uris_ok && http_ok && (method != "process/start" || harmless_program(params.get("argv")))
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k);
            collect_strings(x, out)
        }),
        _ => {}
    }
}

/// A program that is one of [`SAFE_PROGRAMS`], or one that cannot be found (the start
/// fails), or argv that is not a list of strings (the request is refused).
fn harmless_program(argv: Option<&Value>) -> bool {
    let Some(Value::Array(argv)) = argv else { return true };
    match argv.first() {
        Some(Value::String(program)) => SAFE_PROGRAMS.contains(&program.as_str()) || not_found(program),
        _ => true,
    }
}

fn not_found(program: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = DEFAULT_PATH.iter().copied().chain(path.split(':'));
    !program.is_empty()
        && !program.contains('/')
        && program != "."
        && program != ".."
        && dirs.into_iter().all(|d| !Path::new(d).join(program).exists())
}
