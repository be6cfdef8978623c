//! The executor's top-level modules form a one-way graph: transport → connection → rpc →
//! server → services (session, process, fs) → sandbox → leaves (docs/architecture.md).
//! This test reads `executor/src` and fails on any import cycle between its top-level
//! modules, naming the cycle; test code counts, so a test cannot hide one either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../executor/src")
}

/// Top-level modules (`x.rs` or `x/`) of `executor/src`, without the crate roots.
fn top_level_modules() -> BTreeMap<String, PathBuf> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src()).expect("read executor/src") {
        let path = entry.expect("dir entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 module name").to_string();
        let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if is_module && name != "lib" && name != "main" {
            modules.insert(name, path);
        }
    }
    modules
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read module dir") {
            rust_files(&entry.expect("dir entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The top-level modules named by `crate::NAME` or `crate::{NAME, ...}` in `text`,
/// comments left out.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    names.insert(leading_ident(item.trim()));
                }
            } else {
                names.insert(leading_ident(rest));
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

fn leading_ident(text: &str) -> String {
    text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = top_level_modules();
    let mut graph = BTreeMap::new();
    for (name, path) in &modules {
        let mut files = Vec::new();
        rust_files(path, &mut files);
        let mut deps = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            deps.extend(crate_references(&text).into_iter().filter(|d| d != name && modules.contains_key(d)));
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A cycle in `graph`, if there is one, as the list of modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_reference_scanner_sees_every_form_of_crate_path() {
    let text = "use crate::{fs, rpc::Phase};\nlet x = crate::server::Server::new(); // crate::transport\n";
    let found: Vec<String> = crate_references(text).into_iter().collect();
    assert_eq!(found, ["fs", "rpc", "server"]);
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_string()].into());
    graph.insert("b".into(), ["c".to_string()].into());
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
    graph.get_mut("c").expect("c").insert("a".into());
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

#[test]
fn top_level_modules_import_one_way() {
    let graph = dependency_graph();
    assert!(graph.len() >= 10, "the scan found the modules of executor/src: {graph:?}");
    assert!(graph["rpc"].contains("server") && graph["server"].contains("session"), "the scan sees imports: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between top-level modules of executor/src: {}\nfull graph: {graph:#?}", cycle.join(" → "));
    }
}

#[test]
fn docs_architecture_lists_every_top_level_module() {
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/architecture.md");
    for module in top_level_modules().keys() {
        assert!(doc.contains(&format!("`{module}`")), "docs/architecture.md does not describe the module `{module}`");
    }
}

/// Services and everything below them know nothing of JSON-RPC: they return typed
/// errors, and `rpc/errors.rs` maps them to codes at the edge.
#[test]
fn services_return_typed_errors_not_rpc_errors() {
    let modules = top_level_modules();
    let mut offenders = Vec::new();
    for name in ["session", "process", "fs", "http", "sandbox", "child_env", "host_info", "limits", "notify"] {
        let path = modules.get(name).unwrap_or_else(|| panic!("no module `{name}` in executor/src"));
        let mut files = Vec::new();
        rust_files(path, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            if text.contains("RpcError") {
                offenders.push(file.display().to_string());
            }
        }
    }
    assert!(offenders.is_empty(), "these service files use RpcError instead of a typed error: {offenders:?}");
}
