//! No panic on any input, in-process (issue 12, item 5): property tests over every params
//! decoder of the protocol, the line parser and the id recovery of oversized lines, the
//! fs helper's own request decoder, and the sandbox policy resolver over contexts naming
//! a tree of symlinks, loops, protected names and special files. A decoder must answer
//! bad input with -32602 (or -32600 where the protocol says so), never panic: proptest
//! reports a panic as a failure, with the smallest input it could find.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default, as in CI); docs/security-model.md
//! records a longer run. The black-box counterpart is `no_panic_server.rs`.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use executor::child_env::{build_child_env, server_env};
use executor::protocol::envelope::{parse_line, recover_id, RequestId};
use executor::protocol::types as t;
use executor::protocol::{decode_params, RpcError};
use executor::sandbox::policy::{resolve, MountOp};
use executor::sandbox::FileSystemSandboxContext;
use executor_tests::mutation::{apply, json_value, mutated_request, mutation, requests};
use fs_helper::helper::decode_request;
use fs_helper::ops::{decode_op, Operation};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Where the mutated requests' paths point; the decoders never touch it.
fn scratch() -> &'static Path {
    Path::new("/tmp/no-panic-decoders")
}

/// Decodes `params` for `method` as the server does before running anything, and runs
/// the pure step that follows decoding where there is one (building a child's
/// environment from `envPolicy`).
fn decode(method: &str, mut params: Value) -> Result<(), RpcError> {
    if let Some(sandbox) = params.as_object_mut().and_then(|m| m.remove("sandbox")).filter(|s| !s.is_null()) {
        decode_params::<FileSystemSandboxContext>(sandbox)?;
    }
    if let Some(op) = Operation::from_name(method) {
        return decode_op(op, params).map(drop).map_err(RpcError::from);
    }
    match method {
        "initialize" => decode_params::<t::InitializeParams>(params).map(drop),
        "environment/info" | "environment/status" => decode_params::<t::NoParams>(params).map(drop),
        "process/start" => {
            let p: t::ProcessStartParams = decode_params(params)?;
            build_child_env(server_env(), p.env_policy.as_ref(), &p.env)?;
            Ok(())
        }
        "process/read" => decode_params::<t::ProcessReadParams>(params).map(drop),
        "process/write" => decode_params::<t::ProcessWriteParams>(params).map(drop),
        "process/signal" => decode_params::<t::ProcessSignalParams>(params).map(drop),
        "process/terminate" => decode_params::<t::ProcessTerminateParams>(params).map(drop),
        "sandbox/report" => decode_params::<t::SandboxReportParams>(params).map(drop),
        "fs/readBlock" => decode_params::<t::ReadBlockParams>(params).map(drop),
        "fs/writeBlock" => decode_params::<t::WriteBlockParams>(params).map(drop),
        "fs/close" => decode_params::<t::CloseParams>(params).map(drop),
        "fs/watchMissing" => decode_params::<t::WatchMissingParams>(params).map(drop),
        "http/request" => {
            let p: executor::protocol::http::HttpRequestParams = decode_params(params)?;
            executor::http::request::prepare(p, |name| std::env::var_os(name)).map(drop).map_err(RpcError::from)
        }
        other => panic!("no decoder listed for {other}"),
    }
}

fn assert_params_error(method: &str, outcome: Result<(), RpcError>) {
    if let Err(e) = outcome {
        assert!(matches!(e.code, -32602 | -32600), "{method}: {e:?}");
        assert!(!e.message.is_empty(), "{method}: empty message");
    }
}

#[test]
fn every_method_of_the_table_has_a_decoder() {
    for (method, params) in requests(scratch()) {
        decode(method, params.clone()).unwrap_or_else(|e| panic!("{method} {params}: the valid request fails: {e:?}"));
    }
}

proptest! {
    #[test]
    fn mutated_requests_decode_or_fail_with_a_params_error((method, params) in mutated_request(scratch())) {
        assert_params_error(method, decode(method, params));
    }

    #[test]
    fn any_json_as_params_decodes_or_fails_with_a_params_error(
        (method, _) in proptest::sample::select(requests(scratch())),
        params in json_value(scratch()),
    ) {
        assert_params_error(method, decode(method, params));
    }

    #[test]
    fn the_line_parser_and_id_recovery_take_any_bytes(line in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_line(&line);
        let _ = recover_id(&line);
    }

    /// Whatever length of a request line's start is kept, the id read from it is the
    /// request's own id or none.
    #[test]
    fn an_id_recovered_from_a_prefix_is_the_requests_own(
        (method, params) in mutated_request(scratch()),
        id in prop_oneof![any::<i64>().prop_map(RequestId::Integer), any::<String>().prop_map(RequestId::String)],
        cut in any::<usize>(),
    ) {
        let line = serde_json::to_vec(&json!({"id": id, "method": method, "params": params})).expect("serialise");
        let prefix = &line[..cut % (line.len() + 1)];
        let recovered = recover_id(prefix);
        prop_assert!(recovered.is_none() || recovered.as_ref() == Some(&id), "{recovered:?} from {:?}", String::from_utf8_lossy(prefix));
    }

    #[test]
    fn the_helper_request_decoder_takes_any_line(line in proptest::collection::vec(any::<u8>(), 0..512)) {
        helper_decodes(line);
    }

    #[test]
    fn the_helper_request_decoder_takes_mutated_requests(
        (method, params) in mutated_request(scratch()),
        envelope in proptest::collection::vec(mutation(scratch()), 0..2),
    ) {
        let mut request = json!({"operation": method, "params": params});
        for m in &envelope {
            apply(&mut request, m);
        }
        helper_decodes(serde_json::to_vec(&request).expect("serialise"));
    }
}

/// The helper's decoding of one request line: the envelope, then the operation's params.
fn helper_decodes(line: Vec<u8>) {
    match decode_request(line) {
        Err(reply) => {
            let reply = serde_json::to_value(&reply).expect("serialise");
            assert_eq!(reply["payload"]["code"], json!(-32600), "{reply}");
        }
        Ok(request) => {
            if let Err(e) = decode_op(request.operation, request.params) {
                assert!(matches!(e.code(), -32602 | -32600), "{e:?}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// The policy resolver
// ------------------------------------------------------------------------------------

/// A tree for the resolver to canonicalise, walk and inspect: protected names as
/// directories, a `gitdir:` file and a symlink; symlinks inward, upward, to `/`,
/// dangling and looping; a FIFO; a deep chain.
fn tree() -> &'static Path {
    static TREE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &TREE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = std::fs::canonicalize(dir.path()).expect("canonical");
            for d in ["ws/.git", "ws/src", "ws2", "gitdir", "ws3", "decoy", "denied", "deep/a/b/c/d/e/f"] {
                std::fs::create_dir_all(root.join(d)).expect("mkdir");
            }
            for (f, text) in [
                ("ws/src/a.txt", "a"),
                ("ws/.env", "k"),
                ("ws2/.git", "gitdir: ../gitdir\n"),
                ("denied/secret.txt", "s"),
                ("file.txt", "f"),
            ] {
                std::fs::write(root.join(f), text).expect("write");
            }
            for (link, target) in [
                ("ws3/.codex", "../decoy"),
                ("link-ws", "ws"),
                ("link-up", ".."),
                ("link-root", "/"),
                ("dangling", "nowhere"),
                ("loop", "loop"),
            ] {
                std::os::unix::fs::symlink(target, root.join(link)).expect("symlink");
            }
            nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
            (dir, root)
        })
        .1
}

/// Paths below the tree (relative) or absolute system paths, as the resolver may meet them.
const PLACES: &[&str] = &[
    "",
    "ws",
    "ws/src",
    "ws/.git",
    "ws/.env",
    "ws2",
    "ws3",
    "denied",
    "denied/secret.txt",
    "link-ws",
    "link-ws/src",
    "link-up",
    "link-root",
    "dangling",
    "loop",
    "fifo",
    "file.txt",
    "deep/a/b",
    "missing/x",
    "ws/./src",
    "ws//src",
    "ws/src/../..",
    "/",
    "/tmp",
    "/proc/self",
    "/dev/null",
    "/nonexistent",
    "/etc/passwd",
];

fn place() -> impl Strategy<Value = String> {
    proptest::sample::select(PLACES).prop_map(|p| {
        if p.starts_with('/') {
            format!("file://{p}")
        } else {
            format!("file://{}/{p}", tree().display())
        }
    })
}

/// Directories a relative glob may start from: walking from these stays in the tree.
fn cwd() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        proptest::sample::select(&["", "ws", "ws2", "deep", "link-ws", "missing", "file.txt"][..])
            .prop_map(|p| json!(format!("file://{}/{p}", tree().display()))),
        Just(json!("not a uri")),
    ]
}

fn glob() -> impl Strategy<Value = String> {
    let parts = proptest::collection::vec(
        proptest::sample::select(&["*", "**", "?", "[a-z]", "[", "[!x]", "*.env", ".git", "a", "{a,b}", "src", "\\*"][..]),
        1..4,
    );
    (proptest::sample::select(&["", "ws", "deep", "."][..]), any::<bool>(), parts).prop_map(|(base, absolute, parts)| {
        let tail = parts.join("/");
        match (absolute, base) {
            (true, base) => format!("{}/{base}/{tail}", tree().display()),
            (false, "") => tail,
            (false, base) => format!("{base}/{tail}"),
        }
    })
}

fn entry_path() -> impl Strategy<Value = Value> {
    let special = prop_oneof![
        Just(json!({"kind": "root"})),
        Just(json!({"kind": "minimal"})),
        Just(json!({"kind": "current_working_directory"})),
        proptest::option::of(proptest::sample::select(&["ws", "src", "../x", "/abs", "a/./b", "", ".", "link-root"][..]))
            .prop_map(|sub| json!({"kind": "project_roots", "subpath": sub})),
        Just(json!({"kind": "tmpdir"})),
        Just(json!({"kind": "slash_tmp"})),
        Just(json!({"kind": "unknown", "path": "x", "subpath": 3})),
    ];
    prop_oneof![
        place().prop_map(|p| json!({"type": "path", "path": p})),
        special.prop_map(|v| json!({"type": "special", "value": v})),
        glob().prop_map(|p| json!({"type": "glob_pattern", "pattern": p})),
    ]
}

fn entry() -> impl Strategy<Value = Value> {
    let access = proptest::sample::select(&["read", "write", "none", "deny"][..]);
    (entry_path(), access, any::<bool>()).prop_map(|(path, access, skip)| {
        let mut e = json!({"path": path, "access": access});
        if skip {
            e["missing_path_behavior"] = json!("skip");
        }
        e
    })
}

fn context() -> impl Strategy<Value = Value> {
    let file_system = prop_oneof![
        1 => Just(json!({"type": "unrestricted"})),
        6 => (proptest::collection::vec(entry(), 0..8), proptest::option::of(proptest::sample::select(&[0u32, 1, 2, 4, u32::MAX][..])))
            .prop_map(|(entries, depth)| json!({"type": "restricted", "entries": entries, "glob_scan_max_depth": depth})),
    ];
    let network = proptest::sample::select(&["restricted", "enabled"][..]);
    let permissions = prop_oneof![
        6 => (file_system, network.clone()).prop_map(|(fs, n)| json!({"type": "managed", "file_system": fs, "network": n})),
        1 => Just(json!({"type": "disabled"})),
        1 => network.prop_map(|n| json!({"type": "external", "network": n})),
    ];
    let roots = proptest::option::of(proptest::collection::vec(place(), 0..3));
    (permissions, cwd(), roots).prop_map(|(permissions, cwd, roots)| {
        let mut c = json!({"permissions": permissions, "windowsSandboxLevel": "disabled", "cwd": cwd});
        if let Some(roots) = roots {
            c["workspaceRoots"] = json!(roots);
        }
        c
    })
}

fn op_path(op: &MountOp) -> &Path {
    match op {
        MountOp::ReadOnly(p) | MountOp::Writable(p) | MountOp::MaskDir(p) | MountOp::MaskFile(p) => p,
        MountOp::Symlink { link, .. } => link,
    }
}

proptest! {
    /// Any context over the tree resolves to a plan of absolute, dot-free paths, or to an
    /// error; the cwd fallback (what process/start passes) and none (fs requests) both.
    #[test]
    fn the_policy_resolver_takes_any_context_over_a_tricky_tree(context in context(), fallback in any::<bool>()) {
        let Ok(ctx) = decode_params::<FileSystemSandboxContext>(context.clone()) else {
            // Only a `cwd` that is not a URI makes these fail to decode.
            prop_assert_eq!(&context["cwd"], &json!("not a uri"));
            return Ok(());
        };
        let fallback = fallback.then(|| tree().join("ws"));
        match resolve(&ctx, fallback.as_deref()) {
            Ok(plan) => {
                let roots = plan.writable_roots.iter().chain(&plan.readable_roots).chain(&plan.denied).map(PathBuf::as_path);
                let paths = plan.ops.iter().map(op_path).chain(roots);
                for p in paths {
                    prop_assert!(p.is_absolute() && p.components().all(|c| !matches!(c, Component::ParentDir | Component::CurDir)), "{}", p.display());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
