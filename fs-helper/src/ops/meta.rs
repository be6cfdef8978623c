//! `fs/getMetadata`, `fs/canonicalize`, `fs/createDirectory`, `fs/remove`.

use std::fs::{self, Metadata};
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::FsError;
use crate::ops::file::reject_symlink_if_nofollow;
use crate::protocol::{CanonicalizeParams, CanonicalizeResult, CreateDirectoryParams, GetMetadataParams, MetadataResult, RemoveParams};
use crate::uri::PathUri;

/// `fs/getMetadata`: `isSymlink` comes from lstat, everything else from the target
/// (protocol.md §17.6), so a dangling link reports the target's NotFound.
pub fn get_metadata(p: &GetMetadataParams) -> Result<MetadataResult, FsError> {
    let path = p.path.as_path();
    let link = fs::symlink_metadata(path)?;
    reject_symlink_if_nofollow(path, p.follow_symlinks)?;
    let is_symlink = link.file_type().is_symlink();
    let meta = if is_symlink { fs::metadata(path)? } else { link };
    Ok(MetadataResult {
        is_directory: meta.is_dir(),
        is_file: meta.is_file(),
        is_symlink,
        size: meta.len(),
        created_at_ms: created_ms(&meta),
        modified_at_ms: meta.modified().map(epoch_ms).unwrap_or(0),
    })
}

/// Birth time via statx when the kernel and filesystem provide it, else 0 as the
/// reference reports on filesystems without one.
fn created_ms(meta: &Metadata) -> i64 {
    meta.created().map(epoch_ms).unwrap_or(0)
}

fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `fs/canonicalize`: dot segments and symlinks resolved by realpath.
pub fn canonicalize(p: &CanonicalizeParams) -> Result<CanonicalizeResult, FsError> {
    Ok(CanonicalizeResult { path: PathUri(fs::canonicalize(p.path.as_path())?) })
}

/// `fs/createDirectory`: recursive (default) succeeds on an existing directory;
/// non-recursive reports EEXIST (-32603) and a missing parent (-32004).
pub fn create_directory(p: &CreateDirectoryParams) -> Result<(), FsError> {
    let path = p.path.as_path();
    reject_symlink_if_nofollow(path, p.follow_symlinks)?;
    if p.recursive {
        fs::create_dir_all(path)?;
    } else {
        fs::create_dir(path)?;
    }
    Ok(())
}

/// `fs/remove`: `force` (default) makes a missing path a success, like `rm -f`;
/// a symlink is removed itself, never its target.
pub fn remove(p: &RemoveParams) -> Result<(), FsError> {
    let path = p.path.as_path();
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && p.recursive => fs::remove_dir_all(path),
        Ok(m) if m.is_dir() => fs::remove_dir(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if p.force && e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn uri(p: &Path) -> PathUri {
        PathUri(p.to_path_buf())
    }

    fn md(p: &Path, follow: Option<bool>) -> Result<MetadataResult, FsError> {
        get_metadata(&GetMetadataParams { path: uri(p), follow_symlinks: follow })
    }

    #[test]
    fn metadata_of_file_dir_and_symlink() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, b"hello world\n").unwrap();
        let m = md(&f, None).unwrap();
        assert_eq!((m.is_file, m.is_directory, m.is_symlink, m.size), (true, false, false, 12));
        let now = epoch_ms(SystemTime::now());
        assert!((now - m.modified_at_ms).abs() < 60_000, "{} vs {now}", m.modified_at_ms);
        assert!(m.created_at_ms == 0 || (now - m.created_at_ms).abs() < 60_000);

        let m = md(d.path(), None).unwrap();
        assert_eq!((m.is_file, m.is_directory, m.is_symlink), (false, true, false));

        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let m = md(&l, None).unwrap();
        assert_eq!((m.is_file, m.is_directory, m.is_symlink, m.size), (true, false, true, 12));
        assert_eq!(md(&l, Some(false)).unwrap_err().code(), -32600);
        assert!(md(&f, Some(false)).is_ok());
        assert_eq!(md(&d.path().join("nope"), None).unwrap_err().code(), -32004);
    }

    #[test]
    fn canonicalize_resolves_dots_and_links() {
        let d = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(d.path()).unwrap();
        fs::create_dir(real.join("a")).unwrap();
        std::os::unix::fs::symlink(real.join("a"), real.join("l")).unwrap();
        let r = canonicalize(&CanonicalizeParams { path: uri(&real.join("l/../l/.")) }).unwrap();
        assert_eq!(r.path.0, real.join("a"));
        let e = canonicalize(&CanonicalizeParams { path: uri(&real.join("missing")) }).unwrap_err();
        assert_eq!(e.code(), -32004);
    }

    fn mkdir(p: &Path, recursive: bool) -> Result<(), FsError> {
        create_directory(&CreateDirectoryParams { path: uri(p), recursive, follow_symlinks: None })
    }

    #[test]
    fn create_directory_rules() {
        let d = tempfile::tempdir().unwrap();
        mkdir(&d.path().join("a/b"), true).unwrap();
        assert!(d.path().join("a/b").is_dir());
        mkdir(&d.path().join("a/b"), true).unwrap();
        let e = mkdir(&d.path().join("a/b"), false).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "File exists (os error 17)".into()));
        let e = mkdir(&d.path().join("c/d"), false).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32004, "No such file or directory (os error 2)".into()));
        mkdir(&d.path().join("c"), false).unwrap();
        assert!(d.path().join("c").is_dir());
    }

    fn rm(p: &Path, recursive: bool, force: bool) -> Result<(), FsError> {
        remove(&RemoveParams { path: uri(p), recursive, force, follow_symlinks: None })
    }

    #[test]
    fn remove_rules() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        fs::create_dir_all(a.join("b")).unwrap();
        fs::write(a.join("f"), b"x").unwrap();
        let e = rm(&a, false, true).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "Directory not empty (os error 39)".into()));
        let e = rm(&d.path().join("missing"), true, false).unwrap_err();
        assert_eq!(e.code(), -32004);
        rm(&d.path().join("missing"), true, true).unwrap();
        rm(&a.join("f"), false, false).unwrap();
        assert!(!a.join("f").exists());
        rm(&a.join("b"), false, false).unwrap();
        assert!(!a.join("b").exists());
        fs::create_dir_all(a.join("x/y")).unwrap();
        rm(&a, true, true).unwrap();
        assert!(!a.exists());
    }

    #[test]
    fn remove_symlink_keeps_target() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        fs::create_dir(&t).unwrap();
        fs::write(t.join("keep"), b"x").unwrap();
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&t, &l).unwrap();
        rm(&l, true, true).unwrap();
        assert!(fs::symlink_metadata(&l).is_err());
        assert!(t.join("keep").exists());
    }
}
