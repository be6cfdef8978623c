//! `fs/readDirectory` and `fs/walk`.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, FileType};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::FsError;
use crate::protocol::{
    DirectoryEntry, ReadDirectoryParams, ReadDirectoryResult, WalkEntry, WalkEntryKind, WalkError, WalkOptions, WalkParams, WalkResult,
};
use crate::uri::PathUri;

/// `fs/readDirectory`: entries in the order the OS returns them. A symlink reports
/// its target's kind (a dangling one reports neither), matching getMetadata's
/// default of following links.
pub fn read_directory(p: &ReadDirectoryParams) -> Result<ReadDirectoryResult, FsError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(p.path.as_path())? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let (is_directory, is_file) = if ft.is_symlink() {
            fs::metadata(entry.path()).map(|m| (m.is_dir(), m.is_file())).unwrap_or((false, false))
        } else {
            (ft.is_dir(), ft.is_file())
        };
        let file_name = entry.file_name().to_string_lossy().into_owned();
        entries.push(DirectoryEntry { file_name, is_directory, is_file });
    }
    Ok(ReadDirectoryResult { entries })
}

/// `fs/walk` (protocol.md §7.2, §17.5): breadth-first, names sorted within each
/// directory, root excluded. Children of the root are depth 0, so `maxDepth: 0`
/// lists only them; a depth cut is silent, while an entry or directory limit sets
/// `truncated`. Symlinks are not listed but do consume `maxEntries`, unless
/// `followDirectorySymlinks` is set and the link leads to a directory, in which case
/// it is listed and descended (each directory at most once, so loops end). Entries
/// that are neither files nor directories (fifos, sockets, devices) are treated like
/// skipped symlinks.
pub fn walk(p: &WalkParams) -> Result<WalkResult, FsError> {
    let opts = p.options;
    if opts.max_entries == 0 {
        return Err(FsError::ZeroWalkLimit("maxEntries"));
    }
    if opts.max_directories == 0 {
        return Err(FsError::ZeroWalkLimit("maxDirectories"));
    }
    let root = p.path.as_path();
    let meta = fs::metadata(root)?;
    let mut w = Walker { opts, out: WalkResult::default(), seen: HashSet::new(), counted: 0, dirs_read: 0 };
    if meta.is_dir() {
        w.seen.insert((meta.dev(), meta.ino()));
        w.run(root)?;
    }
    Ok(w.out)
}

struct Walker {
    opts: WalkOptions,
    out: WalkResult,
    /// (dev, inode) of every directory queued, against symlink loops.
    seen: HashSet<(u64, u64)>,
    /// Entries consumed toward `maxEntries`, listed or skipped.
    counted: usize,
    dirs_read: usize,
}

enum Flow {
    Continue,
    Stop,
}

impl Walker {
    fn run(&mut self, root: &Path) -> Result<(), FsError> {
        let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::new();
        let root_names = sorted_names(root)?;
        self.dirs_read = 1;
        if let Flow::Stop = self.visit_children(root, root_names, 0, &mut queue) {
            return Ok(());
        }
        while let Some((dir, depth)) = queue.pop_front() {
            if self.dirs_read >= self.opts.max_directories {
                self.out.truncated = true;
                return Ok(());
            }
            self.dirs_read += 1;
            let names = match sorted_names(&dir) {
                Ok(n) => n,
                Err(e) => {
                    self.out.errors.push(WalkError { path: PathUri(dir), message: e.to_string() });
                    continue;
                }
            };
            if let Flow::Stop = self.visit_children(&dir, names, depth, &mut queue) {
                return Ok(());
            }
        }
        Ok(())
    }

    fn visit_children(
        &mut self,
        dir: &Path,
        names: Vec<(std::ffi::OsString, FileType)>,
        depth: usize,
        queue: &mut VecDeque<(PathBuf, usize)>,
    ) -> Flow {
        for (name, ft) in names {
            if self.counted >= self.opts.max_entries {
                self.out.truncated = true;
                return Flow::Stop;
            }
            self.counted += 1;
            let path = dir.join(name);
            let Some(kind) = self.classify(&path, ft) else { continue };
            if kind == WalkEntryKind::Directory && depth < self.opts.max_depth {
                queue.push_back((path.clone(), depth + 1));
            }
            self.out.entries.push(WalkEntry { path: PathUri(path), kind });
        }
        Flow::Continue
    }

    /// The kind to list, or None to skip (but still count) the entry.
    fn classify(&mut self, path: &Path, ft: FileType) -> Option<WalkEntryKind> {
        if ft.is_file() {
            return Some(WalkEntryKind::File);
        }
        if ft.is_dir() {
            if let Ok(m) = fs::symlink_metadata(path) {
                self.seen.insert((m.dev(), m.ino()));
            }
            return Some(WalkEntryKind::Directory);
        }
        if ft.is_symlink() && self.opts.follow_directory_symlinks {
            let m = fs::metadata(path).ok()?;
            if m.is_dir() && self.seen.insert((m.dev(), m.ino())) {
                return Some(WalkEntryKind::Directory);
            }
        }
        None
    }
}

/// Names sorted bytewise, with their (unfollowed) file types.
fn sorted_names(dir: &Path) -> std::io::Result<Vec<(std::ffi::OsString, FileType)>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        names.push((entry.file_name(), entry.file_type()?));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    fn opts(max_depth: usize, max_directories: usize, max_entries: usize, follow: bool) -> WalkOptions {
        WalkOptions { max_depth, max_directories, max_entries, follow_directory_symlinks: follow }
    }

    fn walk_in(root: &Path, o: WalkOptions) -> Result<WalkResult, FsError> {
        walk(&WalkParams { path: PathUri(root.into()), options: o })
    }

    /// Relative path and kind letter of each entry, for compact assertions.
    fn listed(root: &Path, r: &WalkResult) -> Vec<String> {
        r.entries
            .iter()
            .map(|e| {
                let rel = e.path.0.strip_prefix(root).unwrap().display().to_string();
                let k = if e.kind == WalkEntryKind::Directory { "d" } else { "f" };
                format!("{k}:{rel}")
            })
            .collect()
    }

    /// root/{a/{b/{deep.txt}, z.txt}, a2/, with space.txt}
    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b")).unwrap();
        fs::create_dir(d.path().join("a2")).unwrap();
        fs::write(d.path().join("a/b/deep.txt"), b"").unwrap();
        fs::write(d.path().join("a/z.txt"), b"").unwrap();
        fs::write(d.path().join("with space.txt"), b"").unwrap();
        d
    }

    #[test]
    fn breadth_first_sorted_root_excluded() {
        let d = tree();
        let r = walk_in(d.path(), opts(3, 10, 100, false)).unwrap();
        assert_eq!(listed(d.path(), &r), ["d:a", "d:a2", "f:with space.txt", "d:a/b", "f:a/z.txt", "f:a/b/deep.txt"]);
        assert!(!r.truncated && r.errors.is_empty());
        assert!(serde_json::to_string(&r).unwrap().contains("with%20space.txt"));
    }

    #[test]
    fn max_entries_truncates() {
        let d = tree();
        let r = walk_in(d.path(), opts(3, 10, 2, false)).unwrap();
        assert_eq!(listed(d.path(), &r), ["d:a", "d:a2"]);
        assert!(r.truncated);
        let r = walk_in(d.path(), opts(3, 10, 6, false)).unwrap();
        assert_eq!(r.entries.len(), 6);
        assert!(!r.truncated);
    }

    #[test]
    fn max_depth_cut_is_silent() {
        let d = tree();
        let r = walk_in(d.path(), opts(0, 10, 100, false)).unwrap();
        assert_eq!(listed(d.path(), &r), ["d:a", "d:a2", "f:with space.txt"]);
        assert!(!r.truncated);
        let r = walk_in(d.path(), opts(1, 10, 100, false)).unwrap();
        assert_eq!(r.entries.len(), 5);
        assert!(!r.truncated);
    }

    #[test]
    fn max_directories_truncates() {
        let d = tree();
        let r = walk_in(d.path(), opts(3, 1, 100, false)).unwrap();
        assert_eq!(listed(d.path(), &r), ["d:a", "d:a2", "f:with space.txt"]);
        assert!(r.truncated);
    }

    #[test]
    fn zero_limits_rejected() {
        let d = tree();
        let e = walk_in(d.path(), opts(3, 10, 0, false)).unwrap_err();
        assert_eq!(e.code(), -32600);
        assert_eq!(walk_in(d.path(), opts(3, 0, 10, false)).unwrap_err().code(), -32600);
    }

    #[test]
    fn symlinks_skipped_but_counted() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("real")).unwrap();
        fs::write(d.path().join("real/x"), b"").unwrap();
        symlink(d.path().join("real"), d.path().join("a-link")).unwrap();
        let r = walk_in(d.path(), opts(3, 10, 100, false)).unwrap();
        assert_eq!(listed(d.path(), &r), ["d:real", "f:real/x"]);
        let r = walk_in(d.path(), opts(3, 10, 1, false)).unwrap();
        assert!(r.entries.is_empty());
        assert!(r.truncated);
    }

    #[test]
    fn follow_directory_symlinks_lists_each_directory_once() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        let other = d.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("o.txt"), b"").unwrap();
        symlink(&other, root.join("link")).unwrap();
        symlink(&root, root.join("sub/loop")).unwrap();
        let r = walk_in(&root, opts(10, 100, 100, true)).unwrap();
        assert_eq!(listed(&root, &r), ["d:link", "d:sub", "f:link/o.txt"]);
    }

    #[test]
    fn walking_a_file_or_missing_path() {
        let d = tree();
        let r = walk_in(&d.path().join("a/z.txt"), opts(3, 10, 10, false)).unwrap();
        assert_eq!(r, WalkResult::default());
        assert_eq!(walk_in(&d.path().join("nope"), opts(3, 10, 10, false)).unwrap_err().code(), -32004);
    }

    #[test]
    fn unreadable_subdirectory_is_reported_in_errors() {
        let d = tree();
        let b = d.path().join("a/b");
        fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        let r = walk_in(d.path(), opts(3, 10, 100, false));
        fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let r = r.unwrap();
        // root bypasses permission bits, in which case the directory is simply read.
        if r.errors.is_empty() {
            assert_eq!(r.entries.len(), 6);
        } else {
            assert_eq!(r.errors[0].path.0, b);
            assert_eq!(r.errors[0].message, "Permission denied (os error 13)");
        }
    }

    #[test]
    fn read_directory_lists_unsorted_entries() {
        let d = tree();
        symlink(d.path().join("a"), d.path().join("dl")).unwrap();
        let mut r = read_directory(&ReadDirectoryParams { path: PathUri(d.path().into()) }).unwrap().entries;
        r.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        let got: Vec<_> = r.iter().map(|e| (e.file_name.as_str(), e.is_directory, e.is_file)).collect();
        assert_eq!(got, [("a", true, false), ("a2", true, false), ("dl", true, false), ("with space.txt", false, true)]);
        let e = read_directory(&ReadDirectoryParams { path: PathUri(d.path().join("a/z.txt")) }).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "Not a directory (os error 20)".into()));
    }

    #[test]
    fn non_utf8_names() {
        let d = tempfile::tempdir().unwrap();
        let name = OsStr::from_bytes(b"bad\xffname");
        fs::write(d.path().join(name), b"").unwrap();
        let r = read_directory(&ReadDirectoryParams { path: PathUri(d.path().into()) }).unwrap();
        assert_eq!(r.entries[0].file_name, "bad\u{fffd}name");
        let w = walk_in(d.path(), opts(0, 1, 10, false)).unwrap();
        let json = serde_json::to_value(&w).unwrap();
        assert!(json["entries"][0]["path"].as_str().unwrap().ends_with("/bad%FFname"));
        assert_eq!(w.entries[0].path.0, d.path().join(name));
    }
}
