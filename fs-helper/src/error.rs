//! Errors of the `fs/*` operations and their JSON-RPC codes (protocol.md §1.4, §7.1).

use std::io;
use std::path::{Path, PathBuf};

use crate::uri::{self, UriError};

pub use crate::codes::{INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, NOT_FOUND};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An OS error; the message is io::Error's Display, as the reference sends it.
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("path `{}` is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("fs/copy requires recursive: true when sourcePath is a directory")]
    CopyNeedsRecursive,
    #[error("fs/copy cannot copy a directory into itself: `{}`", .0.display())]
    CopyIntoItself(PathBuf),
    #[error("fs/copy only supports regular files, directories and symlinks: `{}`", .0.display())]
    CopyUnsupportedType(PathBuf),
    #[error(
        "fs/copy: `{}` yields more than its reported size ({size} bytes) plus {limit} bytes; \
         pseudo files of unbounded length cannot be copied",
        path.display()
    )]
    CopySourceUnbounded { path: PathBuf, size: u64, limit: u64 },
    #[error("fs/writeFile requires valid base64 dataBase64: {0}")]
    InvalidBase64(base64::DecodeError),
    #[error("fs/writeBlock requires valid base64 chunk: {0}")]
    InvalidChunkBase64(base64::DecodeError),
    #[error("{op}: file `{}` is {size} bytes, larger than the {limit}-byte limit", path.display())]
    TooLarge { op: &'static str, path: PathBuf, size: u64, limit: u64 },
    #[error("{op}: data is {size} bytes, larger than the {limit}-byte limit")]
    DataTooLarge { op: &'static str, size: u64, limit: u64 },
    #[error("path `{}` is a symbolic link and followSymlinks is false", .0.display())]
    SymlinkNotFollowed(PathBuf),
    #[error("fs/walk option `{0}` must be greater than zero")]
    ZeroWalkLimit(&'static str),
    #[error("fs/readBlock len must be between 1 and {0}")]
    BadBlockLen(usize),
    #[error("opening a file requires descriptor handoff")]
    NoDescriptorHandoff,
    #[error("fs operation `{0}` is not supported")]
    Unsupported(String),
    #[error("unknown fs operation `{0}`")]
    UnknownOperation(String),
    /// Params that failed to decode; the message is serde's text.
    #[error("{0}")]
    InvalidParams(String),
    #[error(transparent)]
    Uri(#[from] UriError),
}

impl FsError {
    /// JSON-RPC error code for this error.
    pub fn code(&self) -> i64 {
        match self {
            FsError::Io(e) => io_code(e),
            FsError::Uri(e) => e.code(),
            FsError::InvalidParams(m) => uri::code_for_params_message(m),
            FsError::UnknownOperation(_) => METHOD_NOT_FOUND,
            FsError::NoDescriptorHandoff | FsError::Unsupported(_) => INTERNAL_ERROR,
            FsError::NotAFile(_)
            | FsError::CopyNeedsRecursive
            | FsError::CopyIntoItself(_)
            | FsError::CopyUnsupportedType(_)
            | FsError::CopySourceUnbounded { .. }
            | FsError::InvalidBase64(_)
            | FsError::InvalidChunkBase64(_)
            | FsError::TooLarge { .. }
            | FsError::DataTooLarge { .. }
            | FsError::SymlinkNotFollowed(_)
            | FsError::ZeroWalkLimit(_)
            | FsError::BadBlockLen(_) => INVALID_REQUEST,
        }
    }

    pub(crate) fn params(e: serde_json::Error) -> Self {
        FsError::InvalidParams(e.to_string())
    }

    pub(crate) fn not_a_file(p: &Path) -> Self {
        FsError::NotAFile(p.to_path_buf())
    }
}

/// The reference's mapping: NotFound → -32004, InvalidInput/PermissionDenied → -32600,
/// everything else → -32603.
pub fn io_code(e: &io::Error) -> i64 {
    match e.kind() {
        io::ErrorKind::NotFound => NOT_FOUND,
        io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied => INVALID_REQUEST,
        _ => INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: i32) -> FsError {
        FsError::Io(io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn os_error_codes_and_texts() {
        let e = os(libc::ENOENT);
        assert_eq!(e.code(), -32004);
        assert_eq!(e.to_string(), "No such file or directory (os error 2)");
        assert_eq!(os(libc::EACCES).code(), -32600);
        assert_eq!(os(libc::EINVAL).code(), -32600);
        assert_eq!(os(libc::ENOTDIR).code(), -32603);
        assert_eq!(os(libc::ENOTEMPTY).to_string(), "Directory not empty (os error 39)");
        assert_eq!(os(libc::EROFS).code(), -32603);
    }

    #[test]
    fn specific_texts() {
        let e = FsError::not_a_file(Path::new("/x"));
        assert_eq!(e.to_string(), "path `/x` is not a file");
        assert_eq!(e.code(), -32600);
        assert_eq!(FsError::CopyNeedsRecursive.to_string(), "fs/copy requires recursive: true when sourcePath is a directory");
        let e = FsError::InvalidBase64(base64::DecodeError::InvalidByte(0, b'!'));
        assert_eq!(e.to_string(), "fs/writeFile requires valid base64 dataBase64: Invalid symbol 33, offset 0.");
        assert_eq!(e.code(), -32600);
        assert_eq!(FsError::NoDescriptorHandoff.code(), -32603);
    }

    #[test]
    fn params_error_codes() {
        assert_eq!(FsError::InvalidParams("missing field `path`".into()).code(), -32602);
        let remote = UriError::RemoteHost("h".into()).to_string();
        assert_eq!(FsError::InvalidParams(remote).code(), -32600);
        assert_eq!(FsError::Uri(UriError::Nul).code(), -32602);
    }
}
