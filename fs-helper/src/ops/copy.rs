//! `fs/copy`: regular files, directories (with `recursive: true`) and symlinks
//! (recreated as symlinks with the same target); any other file type is refused.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::FsError;
use crate::protocol::CopyParams;

pub fn copy(p: &CopyParams) -> Result<(), FsError> {
    let src = p.source_path.as_path();
    let dst = p.destination_path.as_path();
    let meta = fs::symlink_metadata(src)?;
    if meta.is_dir() {
        if !p.recursive {
            return Err(FsError::CopyNeedsRecursive);
        }
        refuse_copy_into_itself(src, dst)?;
        return copy_dir(src, dst);
    }
    copy_entry(src, dst, meta.file_type())
}

fn copy_entry(src: &Path, dst: &Path, ft: fs::FileType) -> Result<(), FsError> {
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        fs::copy(src, dst)?;
    } else if ft.is_dir() {
        copy_dir(src, dst)?;
    } else {
        return Err(FsError::CopyUnsupportedType(src.to_path_buf()));
    }
    Ok(())
}

/// Merges into an existing destination directory, like `cp -r src/. dst`.
fn copy_dir(src: &Path, dst: &Path) -> Result<(), FsError> {
    match fs::create_dir(dst) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dst.is_dir() => {}
        other => other?,
    }
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        copy_entry(&entry.path(), &dst.join(entry.file_name()), entry.file_type()?)?;
    }
    Ok(())
}

/// Copying a directory into its own subtree would recurse until the disk fills.
fn refuse_copy_into_itself(src: &Path, dst: &Path) -> Result<(), FsError> {
    let src_real = fs::canonicalize(src)?;
    let dst_real = resolve_destination(dst);
    if dst_real.starts_with(&src_real) {
        return Err(FsError::CopyIntoItself(dst.to_path_buf()));
    }
    Ok(())
}

/// The destination may not exist yet: resolve its nearest existing ancestor.
fn resolve_destination(dst: &Path) -> PathBuf {
    let mut suffix = Vec::new();
    let mut cur = dst;
    loop {
        if let Ok(real) = fs::canonicalize(cur) {
            return suffix.iter().rev().fold(real, |acc: PathBuf, part| acc.join(part));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                suffix.push(name.to_os_string());
                cur = parent;
            }
            _ => return dst.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::PathUri;

    fn cp(src: &Path, dst: &Path, recursive: bool) -> Result<(), FsError> {
        copy(&CopyParams {
            source_path: PathUri(src.into()),
            destination_path: PathUri(dst.into()),
            recursive,
        })
    }

    #[test]
    fn copies_a_file() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), b"data").unwrap();
        cp(&d.path().join("a"), &d.path().join("b"), false).unwrap();
        assert_eq!(fs::read(d.path().join("b")).unwrap(), b"data");
    }

    #[test]
    fn directory_needs_recursive() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("a")).unwrap();
        let e = cp(&d.path().join("a"), &d.path().join("b"), false).unwrap_err();
        assert_eq!(e.code(), -32600);
        assert_eq!(e.to_string(), "fs/copy requires recursive: true when sourcePath is a directory");
        assert!(!d.path().join("b").exists());
    }

    #[test]
    fn copies_a_tree_with_symlinks_as_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        fs::create_dir_all(a.join("sub")).unwrap();
        fs::write(a.join("sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("sub/f", a.join("l")).unwrap();
        let b = d.path().join("b");
        cp(&a, &b, true).unwrap();
        assert_eq!(fs::read(b.join("sub/f")).unwrap(), b"x");
        assert!(fs::symlink_metadata(b.join("l")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(b.join("l")).unwrap(), Path::new("sub/f"));
    }

    #[test]
    fn top_level_symlink_copied_as_symlink() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", d.path().join("l")).unwrap();
        cp(&d.path().join("l"), &d.path().join("m"), false).unwrap();
        assert_eq!(fs::read_link(d.path().join("m")).unwrap(), Path::new("/nonexistent/target"));
    }

    #[test]
    fn special_files_and_missing_sources_refused() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = cp(&fifo, &d.path().join("x"), true).unwrap_err();
        assert_eq!(e.code(), -32600);
        assert!(e.to_string().starts_with("fs/copy only supports regular files, directories and symlinks"));
        assert_eq!(cp(&d.path().join("nope"), &d.path().join("x"), true).unwrap_err().code(), -32004);
    }

    #[test]
    fn copy_into_itself_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        fs::create_dir(&a).unwrap();
        let e = cp(&a, &a.join("inner/deeper"), true).unwrap_err();
        assert_eq!(e.code(), -32600);
        assert!(!a.join("inner").exists());
    }
}
