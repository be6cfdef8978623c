//! The `fs/*` operations and their dispatch by name.

pub mod copy;
pub mod dir;
pub mod file;
pub mod meta;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FsError;
use crate::protocol::{self as p, Empty};

pub use copy::copy;
pub use dir::{read_directory, walk};
pub use file::{
    open_file, read_block, read_file, write_block, write_file, Base64Blocks, FileToRead, READ_BLOCK_MAX_BYTES, READ_FILE_MAX_BYTES,
    READ_FILE_RESULT_HEAD, READ_FILE_RESULT_TAIL, WRITE_FILE_MAX_BYTES,
};
pub use meta::{canonicalize, create_directory, get_metadata, remove};

/// Operations the helper accepts, in the reference's order so that serde's
/// "unknown variant ..., expected one of ..." text matches it (transcript 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Operation {
    #[serde(rename = "capabilities/loadDiscoveries")]
    LoadDiscoveries,
    #[serde(rename = "capabilityRoots/discoverV1")]
    DiscoverV1,
    #[serde(rename = "fs/open")]
    Open,
    #[serde(rename = "fs/readFile")]
    ReadFile,
    #[serde(rename = "fs/writeFile")]
    WriteFile,
    #[serde(rename = "fs/createDirectory")]
    CreateDirectory,
    #[serde(rename = "fs/getMetadata")]
    GetMetadata,
    #[serde(rename = "fs/canonicalize")]
    Canonicalize,
    #[serde(rename = "fs/readDirectory")]
    ReadDirectory,
    #[serde(rename = "fs/walk")]
    Walk,
    #[serde(rename = "fs/remove")]
    Remove,
    #[serde(rename = "fs/copy")]
    Copy,
}

impl Operation {
    pub fn from_name(name: &str) -> Option<Operation> {
        serde_json::from_value(Value::String(name.to_string())).ok()
    }

    /// Whether running the operation twice has the effect of running it once, and none
    /// on the files.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            Operation::ReadFile
                | Operation::GetMetadata
                | Operation::Canonicalize
                | Operation::ReadDirectory
                | Operation::Walk
                | Operation::LoadDiscoveries
                | Operation::DiscoverV1
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::LoadDiscoveries => "capabilities/loadDiscoveries",
            Operation::DiscoverV1 => "capabilityRoots/discoverV1",
            Operation::Open => "fs/open",
            Operation::ReadFile => "fs/readFile",
            Operation::WriteFile => "fs/writeFile",
            Operation::CreateDirectory => "fs/createDirectory",
            Operation::GetMetadata => "fs/getMetadata",
            Operation::Canonicalize => "fs/canonicalize",
            Operation::ReadDirectory => "fs/readDirectory",
            Operation::Walk => "fs/walk",
            Operation::Remove => "fs/remove",
            Operation::Copy => "fs/copy",
        }
    }
}

/// Runs one operation by its method name on raw JSON params. `fs/open` cannot be
/// answered here (a descriptor does not fit in JSON): callers use [`open_file`], or
/// the helper's descriptor handoff.
pub fn execute(operation: &str, params: Value) -> Result<Value, FsError> {
    let op = Operation::from_name(operation).ok_or_else(|| FsError::UnknownOperation(operation.to_string()))?;
    execute_op(op, params)
}

pub fn execute_op(op: Operation, params: Value) -> Result<Value, FsError> {
    decode_op(op, params)?.run()
}

/// An operation with its params decoded, before anything touches the filesystem.
#[derive(Debug)]
pub enum Decoded {
    ReadFile(p::ReadFileParams),
    WriteFile(p::WriteFileParams),
    CreateDirectory(p::CreateDirectoryParams),
    GetMetadata(p::GetMetadataParams),
    Canonicalize(p::CanonicalizeParams),
    ReadDirectory(p::ReadDirectoryParams),
    Walk(p::WalkParams),
    Remove(p::RemoveParams),
    Copy(p::CopyParams),
    Open(p::OpenParams),
    /// Known to the helper protocol, not served by this implementation.
    Unsupported(Operation),
}

/// Decodes the params of `op` (-32602 for params that do not fit, -32600 for a
/// non-local URI host), the one decoder behind [`execute_op`] and the helper.
pub fn decode_op(op: Operation, params: Value) -> Result<Decoded, FsError> {
    Ok(match op {
        Operation::ReadFile => Decoded::ReadFile(decode(params)?),
        Operation::WriteFile => Decoded::WriteFile(decode(params)?),
        Operation::CreateDirectory => Decoded::CreateDirectory(decode(params)?),
        Operation::GetMetadata => Decoded::GetMetadata(decode(params)?),
        Operation::Canonicalize => Decoded::Canonicalize(decode(params)?),
        Operation::ReadDirectory => Decoded::ReadDirectory(decode(params)?),
        Operation::Walk => Decoded::Walk(decode(params)?),
        Operation::Remove => Decoded::Remove(decode(params)?),
        Operation::Copy => Decoded::Copy(decode(params)?),
        Operation::Open => Decoded::Open(decode(params)?),
        Operation::LoadDiscoveries | Operation::DiscoverV1 => Decoded::Unsupported(op),
    })
}

impl Decoded {
    /// Performs the operation.
    pub fn run(self) -> Result<Value, FsError> {
        match self {
            Decoded::ReadFile(params) => {
                // Built by hand so the (possibly huge) string moves instead of being
                // copied by a serializer.
                let r = read_file(&params)?;
                let mut map = serde_json::Map::new();
                map.insert("dataBase64".to_string(), Value::String(r.data_base64));
                Ok(Value::Object(map))
            }
            Decoded::WriteFile(params) => write_file(&params).and_then(|()| encode(Empty {})),
            Decoded::CreateDirectory(params) => create_directory(&params).and_then(|()| encode(Empty {})),
            Decoded::GetMetadata(params) => encode(get_metadata(&params)?),
            Decoded::Canonicalize(params) => encode(canonicalize(&params)?),
            Decoded::ReadDirectory(params) => encode(read_directory(&params)?),
            Decoded::Walk(params) => encode(walk(&params)?),
            Decoded::Remove(params) => remove(&params).and_then(|()| encode(Empty {})),
            Decoded::Copy(params) => copy(&params).and_then(|()| encode(Empty {})),
            Decoded::Open(_) => Err(FsError::NoDescriptorHandoff),
            Decoded::Unsupported(op) => Err(FsError::Unsupported(op.name().to_string())),
        }
    }
}

impl Decoded {
    /// Appends the result's compact JSON to `out`, without building a `Value` first: for
    /// a large listing that would take several times the size of its text (100,000
    /// directory entries: about 95 MB against 5.7 MB). Listings are written from their
    /// types, so their members come in declaration order rather than sorted.
    pub fn append_result_json(self, out: &mut Vec<u8>) -> Result<(), FsError> {
        match self {
            Decoded::ReadDirectory(params) => write_json(out, &read_directory(&params)?),
            Decoded::Walk(params) => write_json(out, &walk(&params)?),
            other => write_json(out, &other.run()?),
        }
    }
}

fn write_json<T: Serialize>(out: &mut Vec<u8>, v: &T) -> Result<(), FsError> {
    serde_json::to_writer(out, v).map_err(|e| FsError::Io(std::io::Error::other(e)))
}

/// Opens the file of an `fs/readFile` on raw JSON params.
pub fn open_read_file(params: Value) -> Result<FileToRead, FsError> {
    FileToRead::open(&decode(params)?)
}

/// `null` params decode like `{}`, so a missing-field error names the field.
fn decode<T: DeserializeOwned>(params: Value) -> Result<T, FsError> {
    let params = if params.is_null() { Value::Object(Default::default()) } else { params };
    serde_json::from_value(params).map_err(FsError::params)
}

fn encode<T: Serialize>(v: T) -> Result<Value, FsError> {
    serde_json::to_value(v).map_err(|e| FsError::Io(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::path_to_uri;
    use serde_json::json;

    #[test]
    fn operation_names_round_trip() {
        for name in ["fs/readFile", "fs/walk", "fs/open", "capabilityRoots/discoverV1"] {
            assert_eq!(Operation::from_name(name).unwrap().name(), name);
        }
        assert_eq!(Operation::from_name("readFile"), None);
    }

    #[test]
    fn execute_dispatches_and_reports_errors() {
        let d = tempfile::tempdir().unwrap();
        let f = path_to_uri(&d.path().join("f.txt"));
        let r = execute("fs/writeFile", json!({"path": f, "dataBase64": "aGk=", "sandbox": null})).unwrap();
        assert_eq!(r, json!({}));
        let r = execute("fs/readFile", json!({"path": f})).unwrap();
        assert_eq!(r, json!({"dataBase64": "aGk="}));
        let r = execute("fs/getMetadata", json!({"path": f})).unwrap();
        assert_eq!(r["size"], json!(2));
        assert_eq!(r["isFile"], json!(true));
        let r = execute("fs/readDirectory", json!({"path": path_to_uri(d.path())})).unwrap();
        assert_eq!(r, json!({"entries": [{"fileName": "f.txt", "isDirectory": false, "isFile": true}]}));

        let e = execute("fs/readFile", json!({"path": "/tmp"})).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32602, "invalid URI: relative URL without a base".into()));
        let e = execute("fs/readFile", json!({"path": "file://otherhost/p"})).unwrap_err();
        assert_eq!(e.code(), -32600);
        let e = execute("fs/readFile", json!({})).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32602, "missing field `path`".into()));
        let e = execute("fs/readFile", Value::Null).unwrap_err();
        assert_eq!(e.to_string(), "missing field `path`");
        let e = execute("fs/bogus", json!({})).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32601, "unknown fs operation `fs/bogus`".into()));
        let e = execute("fs/open", json!({"handleId": "h", "path": f})).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "opening a file requires descriptor handoff".into()));
    }
}
