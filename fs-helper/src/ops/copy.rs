//! `fs/copy`: regular files, directories (with `recursive: true`) and symlinks
//! (recreated as symlinks with the same target); any other file type is refused.
//!
//! A regular file is copied through a descriptor opened without blocking and checked
//! again after opening (the path may have been swapped for a FIFO or device since it
//! was inspected), and at most [`COPY_GROWTH_MAX_BYTES`] beyond the size it reported
//! are copied: pseudo files report a size of 0 yet can yield without end
//! (`/proc/self/pagemap` yields hundreds of GiB).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::FsError;
use crate::ops::file::open_without_blocking;
use crate::protocol::CopyParams;

/// How much more than its reported size a source may yield before the copy is
/// abandoned. Generous for pseudo files (procfs and sysfs report 0) and files growing
/// during the copy, small enough that a copy cannot fill a disk.
pub const COPY_GROWTH_MAX_BYTES: u64 = 64 * 1024 * 1024;

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
        copy_file(src, dst)?;
    } else if ft.is_dir() {
        copy_dir(src, dst)?;
    } else {
        return Err(FsError::CopyUnsupportedType(src.to_path_buf()));
    }
    Ok(())
}

/// Like `fs::copy` (contents and permission bits), bounded as the module explains.
fn copy_file(src: &Path, dst: &Path) -> Result<(), FsError> {
    let from = open_without_blocking(OpenOptions::new().read(true), src, 0)?;
    let meta = from.metadata()?;
    if !meta.is_file() {
        return Err(FsError::CopyUnsupportedType(src.to_path_buf()));
    }
    let limit = meta.len().saturating_add(COPY_GROWTH_MAX_BYTES);
    let mode = meta.permissions().mode();
    let mut to = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(dst)?;
    let copied = io::copy(&mut (&from).take(limit), &mut to)?;
    if copied == limit && yields_more(&from)? {
        drop(to);
        // Nothing useful is left: the destination was truncated when it was opened.
        let _ = fs::remove_file(dst);
        return Err(FsError::CopySourceUnbounded { path: src.to_path_buf(), size: meta.len(), limit: COPY_GROWTH_MAX_BYTES });
    }
    // An existing destination keeps its mode through open(2); fs::copy sets it too.
    to.set_permissions(meta.permissions())?;
    Ok(())
}

/// Whether `file` has data past the current offset. The probe is a whole page because
/// some pseudo files (pagemap) refuse reads that are not a multiple of 8 bytes.
fn yields_more(mut file: &File) -> io::Result<bool> {
    let mut probe = [0u8; 4096];
    loop {
        match file.read(&mut probe) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Merges into an existing destination directory, like `cp -r src/. dst`.
fn copy_dir(src: &Path, dst: &Path) -> Result<(), FsError> {
    // Opened first, so that an unreadable source leaves no empty destination behind.
    let entries = fs::read_dir(src)?;
    match fs::create_dir(dst) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dst.is_dir() => {}
        other => other?,
    }
    for entry in entries {
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
        copy(&CopyParams { source_path: PathUri(src.into()), destination_path: PathUri(dst.into()), recursive })
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
    fn endless_pseudo_file_is_cut_off_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("pagemap");
        let e = cp(Path::new("/proc/self/pagemap"), &dst, false).unwrap_err();
        assert_eq!(e.code(), -32600);
        assert_eq!(
            e.to_string(),
            format!(
                "fs/copy: `/proc/self/pagemap` yields more than its reported size (0 bytes) plus {COPY_GROWTH_MAX_BYTES} bytes; \
                 pseudo files of unbounded length cannot be copied"
            )
        );
        assert!(!dst.exists());
    }

    #[test]
    fn source_swapped_for_a_fifo_after_inspection_does_not_hang() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = copy_file(&fifo, &d.path().join("x")).unwrap_err();
        assert!(matches!(e, FsError::CopyUnsupportedType(_)), "{e}");
        assert!(!d.path().join("x").exists());
    }

    #[test]
    fn short_pseudo_file_is_copied_in_full() {
        let d = tempfile::tempdir().unwrap();
        cp(Path::new("/proc/self/status"), &d.path().join("status"), false).unwrap();
        assert!(fs::read_to_string(d.path().join("status")).unwrap().contains("Pid:"));
    }

    #[test]
    fn permissions_are_copied_onto_an_existing_destination() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        fs::write(&src, b"new").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o751)).unwrap();
        fs::write(&dst, b"old and longer").unwrap();
        cp(&src, &dst, false).unwrap();
        assert_eq!(fs::read(&dst).unwrap(), b"new");
        assert_eq!(fs::metadata(&dst).unwrap().permissions().mode() & 0o777, 0o751);
    }

    #[test]
    fn unreadable_source_directory_leaves_no_destination() {
        let d = tempfile::tempdir().unwrap();
        // Not a permission check (root ignores modes): a file where a directory is expected.
        let src = d.path().join("file");
        fs::write(&src, b"x").unwrap();
        let e = copy_dir(&src, &d.path().join("dst")).unwrap_err();
        assert_eq!(e.to_string(), "Not a directory (os error 20)");
        assert!(!d.path().join("dst").exists());
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
