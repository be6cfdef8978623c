//! envPolicy applied to the executor's own environment (protocol.md §6), observed through
//! `/usr/bin/env` in the child.

use executor_tests::RpcClient as _;
use std::collections::BTreeMap;
use std::process::Command;

use executor_tests::{executor_bin, Executor};
use serde_json::{json, Value};

fn server() -> Executor {
    let mut command = Command::new(executor_bin());
    command.args(["--listen", "stdio"]).env_clear();
    for (k, v) in [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C"),
        ("USER", "root"),
        ("TMPDIR", "/tmp"),
        ("tmp", "lower"),
        ("FOO", "bar"),
        ("MY_API_KEY", "k"),
        ("some_token", "t"),
        ("A_SECRET_X", "s"),
        ("KEEP_ME", "1"),
    ] {
        command.env(k, v);
    }
    let mut server = Executor::spawn(command);
    server.handshake();
    server
}

fn child_env(server: &mut Executor, id: &str, env: Value, policy: Option<Value>) -> BTreeMap<String, String> {
    let mut params = json!({"argv":["/usr/bin/env"],"cwd":"file:///tmp","env":env,"tty":false});
    if let Some(policy) = policy {
        params["envPolicy"] = policy;
    }
    let out = server.run(id, params);
    out.stdout_str().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn names(env: &BTreeMap<String, String>) -> Vec<&str> {
    env.keys().map(String::as_str).collect()
}

#[test]
fn without_policy_the_child_gets_exactly_env() {
    let mut server = server();
    let env = child_env(&mut server, "e0", json!({"X": "1"}), None);
    assert_eq!(names(&env), ["X"]);
}

#[test]
fn inherit_all_drops_default_excludes() {
    let mut server = server();
    let policy = json!({"inherit":"all","ignoreDefaultExcludes":false,"exclude":[],"set":{},"includeOnly":[]});
    let env = child_env(&mut server, "e1", json!({}), Some(policy));
    assert_eq!(names(&env), ["FOO", "HOME", "KEEP_ME", "LANG", "LC_ALL", "PATH", "TMPDIR", "USER", "tmp"]);
}

#[test]
fn exclude_set_and_ignore_default_excludes() {
    let mut server = server();
    let policy =
        json!({"inherit":"all","ignoreDefaultExcludes":true,"exclude":["foo","lc_*"],"set":{"NEW":"n","FOO":"setwins"},"includeOnly":[]});
    let env = child_env(&mut server, "e2", json!({"OVER":"o"}), Some(policy));
    assert_eq!(env.get("FOO").map(String::as_str), Some("setwins"));
    assert_eq!(env.get("MY_API_KEY").map(String::as_str), Some("k"));
    assert_eq!(env.get("some_token").map(String::as_str), Some("t"));
    assert!(!env.contains_key("LC_ALL"));
    assert_eq!(env.get("OVER").map(String::as_str), Some("o"));
}

#[test]
fn inherit_core_is_case_insensitive() {
    let mut server = server();
    let policy = json!({"inherit":"core","ignoreDefaultExcludes":false,"exclude":[],"set":{},"includeOnly":[]});
    let env = child_env(&mut server, "e3", json!({}), Some(policy));
    assert_eq!(names(&env), ["HOME", "LANG", "LC_ALL", "PATH", "TMPDIR", "USER", "tmp"]);
}

#[test]
fn include_only_after_set_and_unfiltered_overlay() {
    let mut server = server();
    let policy =
        json!({"inherit":"none","ignoreDefaultExcludes":false,"exclude":[],"set":{"S_TOKEN":"x","Z":"z"},"includeOnly":["z","path"]});
    let env = child_env(&mut server, "e4", json!({"PATH":"/bin","Y_TOKEN":"overlay"}), Some(policy));
    assert_eq!(names(&env), ["PATH", "Y_TOKEN", "Z"]);
    assert_eq!(env["PATH"], "/bin");
    let policy = json!({"inherit":"all","ignoreDefaultExcludes":false,"exclude":[],"set":{},"includeOnly":["K*"]});
    let env = child_env(&mut server, "e5", json!({}), Some(policy));
    assert_eq!(names(&env), ["KEEP_ME"]);
}

#[test]
fn policy_decoding_errors() {
    let mut server = server();
    let mut params =
        json!({"processId":"e6","argv":["/usr/bin/env"],"cwd":"file:///tmp","env":{},"tty":false,"envPolicy":{"inherit":"all"}});
    let (code, message) = server.call_err("process/start", params.clone());
    assert_eq!((code, message.as_str()), (-32602, "missing field `ignoreDefaultExcludes`"));
    params["envPolicy"] = json!({"inherit":"All","ignoreDefaultExcludes":false,"exclude":[],"set":{},"includeOnly":[]});
    let (code, message) = server.call_err("process/start", params);
    assert_eq!((code, message.as_str()), (-32602, "unknown variant `All`, expected one of `core`, `all`, `none`"));
}
