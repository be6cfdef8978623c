//! fs/* without a sandbox, over stdio (protocol.md §7, transcript 7).

use executor_tests::RpcClient as _;
use executor_tests::{b64, unb64, uri, Executor};
use serde_json::json;

#[test]
fn files_directories_metadata_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut s = Executor::ready(&[]);
    let a = root.join("a");
    assert_eq!(s.call("fs/createDirectory", json!({"path": uri(&a.join("b")), "recursive": true})), json!({}));
    let (code, _) = s.call_err("fs/createDirectory", json!({"path": uri(&root.join("c/d")), "recursive": false}));
    assert_eq!(code, -32004);
    let hello = a.join("hello.txt");
    s.call("fs/writeFile", json!({"path": uri(&hello), "dataBase64": b64(b"hello world\n")}));
    assert_eq!(std::fs::read(&hello).expect("written"), b"hello world\n");
    let (code, message) = s.call_err("fs/writeFile", json!({"path": uri(&a.join("bad.txt")), "dataBase64": "!!!"}));
    assert_eq!((code, message.as_str()), (-32600, "fs/writeFile requires valid base64 dataBase64: Invalid symbol 33, offset 0."));
    let (code, _) = s.call_err("fs/writeFile", json!({"path": uri(&root.join("missing/x.txt")), "dataBase64": ""}));
    assert_eq!(code, -32004, "a missing parent is NotFound, which Codex relies on");
    let read = s.call("fs/readFile", json!({"path": uri(&hello)}));
    assert_eq!(unb64(read["dataBase64"].as_str().expect("data")), b"hello world\n");
    let (code, message) = s.call_err("fs/readFile", json!({"path": uri(&a.join("missing.txt"))}));
    assert_eq!((code, message.as_str()), (-32004, "No such file or directory (os error 2)"));
    let (code, message) = s.call_err("fs/readFile", json!({"path": uri(&a)}));
    assert_eq!((code, message), (-32600, format!("path `{}` is not a file", a.display())));
    let (code, message) = s.call_err("fs/readFile", json!({"path": hello.display().to_string()}));
    assert_eq!((code, message.as_str()), (-32602, "invalid URI: relative URL without a base"));
    let meta = s.call("fs/getMetadata", json!({"path": uri(&hello)}));
    assert_eq!((meta["isFile"].clone(), meta["isDirectory"].clone(), meta["size"].clone()), (json!(true), json!(false), json!(12)));
    let listing = s.call("fs/readDirectory", json!({"path": uri(&a)}));
    let mut names: Vec<String> =
        listing["entries"].as_array().expect("entries").iter().map(|e| e["fileName"].as_str().unwrap_or("").to_owned()).collect();
    names.sort();
    assert_eq!(names, ["b", "hello.txt"]);
    let (code, message) = s.call_err("fs/readDirectory", json!({"path": uri(&hello)}));
    assert_eq!((code, message.as_str()), (-32603, "Not a directory (os error 20)"));
    let canon = s.call("fs/canonicalize", json!({"path": format!("{}/../a/hello.txt", uri(&a))}));
    assert_eq!(canon["path"], json!(uri(&hello)));
    let (code, message) =
        s.call_err("fs/copy", json!({"sourcePath": uri(&a), "destinationPath": uri(&root.join("a2")), "recursive": false}));
    assert_eq!((code, message.as_str()), (-32600, "fs/copy requires recursive: true when sourcePath is a directory"));
    s.call("fs/copy", json!({"sourcePath": uri(&a), "destinationPath": uri(&root.join("a2")), "recursive": true}));
    assert_eq!(std::fs::read(root.join("a2/hello.txt")).expect("copied"), b"hello world\n");
    let (code, message) = s.call_err("fs/remove", json!({"path": uri(&root.join("a2")), "recursive": false}));
    assert_eq!((code, message.as_str()), (-32603, "Directory not empty (os error 39)"));
    let (code, _) = s.call_err("fs/remove", json!({"path": uri(&root.join("nonexistent")), "force": false}));
    assert_eq!(code, -32004);
    assert_eq!(s.call("fs/remove", json!({"path": uri(&root.join("nonexistent"))})), json!({}));
    s.call("fs/remove", json!({"path": uri(&root.join("a2"))}));
    assert!(!root.join("a2").exists());
}

#[test]
fn walk_is_breadth_first_sorted_and_truncates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::fs::write(root.join("with space.txt"), b"x").expect("write");
    std::fs::write(root.join("a/z.txt"), b"x").expect("write");
    let mut s = Executor::ready(&[]);
    let walk = s.call(
        "fs/walk",
        json!({"path": uri(root), "options": {"maxDepth": 3, "maxDirectories": 10, "maxEntries": 100, "followDirectorySymlinks": false}}),
    );
    let paths: Vec<&str> = walk["entries"].as_array().expect("entries").iter().map(|e| e["path"].as_str().unwrap_or("")).collect();
    let base = uri(root);
    assert_eq!(paths, [format!("{base}/a"), format!("{base}/with%20space.txt"), format!("{base}/a/b"), format!("{base}/a/z.txt")]);
    assert_eq!(walk["truncated"], false);
    let walk = s.call(
        "fs/walk",
        json!({"path": uri(root), "options": {"maxDepth": 3, "maxDirectories": 10, "maxEntries": 2, "followDirectorySymlinks": false}}),
    );
    assert_eq!(walk["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(walk["truncated"], true);
    let (code, _) = s.call_err("fs/walk", json!({"path": uri(root), "options": {"maxDepth": 3}}));
    assert_eq!(code, -32602);
}

#[test]
fn file_handles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, b"hello world\n").expect("write");
    let mut s = Executor::ready(&[]);
    assert_eq!(s.call("fs/open", json!({"handleId": "h1", "path": uri(&file)})), json!({"handleId": "h1"}));
    let (code, message) = s.call_err("fs/open", json!({"handleId": "h1", "path": uri(&file)}));
    assert_eq!((code, message.as_str()), (-32600, "file handle `h1` already exists"));
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "h1", "offset": 0, "len": 5})), json!({"chunk": "aGVsbG8=", "eof": false}));
    assert_eq!(s.call("fs/readBlock", json!({"handleId": "h1", "offset": 6, "len": 100})), json!({"chunk": "d29ybGQK", "eof": true}));
    let (code, _) = s.call_err("fs/readBlock", json!({"handleId": "h1", "offset": 0, "len": 0}));
    assert_eq!(code, -32600);
    let (code, message) = s.call_err("fs/writeBlock", json!({"handleId": "h1", "offset": 0, "chunk": "eA=="}));
    assert_eq!((code, message.as_str()), (-32603, "Bad file descriptor (os error 9)"));
    assert_eq!(s.call("fs/close", json!({"handleId": "h1"})), json!({}));
    assert_eq!(s.call("fs/close", json!({"handleId": "h1"})), json!({}));
    let (code, message) = s.call_err("fs/readBlock", json!({"handleId": "h1", "offset": 0, "len": 5}));
    assert_eq!((code, message.as_str()), (-32004, "unknown file handle `h1`"));
    let new = dir.path().join("new.txt");
    s.call("fs/open", json!({"handleId": "h2", "path": uri(&new), "mode": "replace"}));
    s.call("fs/writeBlock", json!({"handleId": "h2", "offset": 0, "chunk": "YWJj"}));
    s.call("fs/writeBlock", json!({"handleId": "h2", "offset": 3, "chunk": "ZGVm"}));
    s.call("fs/close", json!({"handleId": "h2"}));
    assert_eq!(std::fs::read(&new).expect("written"), b"abcdef");
}
