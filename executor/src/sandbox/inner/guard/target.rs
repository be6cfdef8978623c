//! The process behind a notification, seen from the supervisor: its memory (to copy
//! path arguments once), its cwd and descriptors (the bases of relative paths), its
//! umask, and a path walk that resolves names the way the kernel would for it.
//!
//! Everything is read through `/proc/<tid>` of the sandbox's own PID namespace. The
//! walk is done here, component by component, rather than by the kernel in one
//! `openat`, because the supervisor is a different process: a `/proc/self` met on the
//! way (for instance through `/dev/fd` or `/dev/stderr`) must mean the supervised
//! process, not the supervisor.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use super::sys::{self, Errno};

/// Linux's limit on symbolic links followed in one lookup.
const MAX_SYMLINKS: u32 = 40;
/// Inode number of the procfs root directory.
const PROC_ROOT_INO: u64 = 1;

pub struct Target {
    pub tid: u32,
    proc_dir: OwnedFd,
    mem: File,
}

impl Target {
    /// Opens `/proc/<tid>`. The caller must confirm the notification is still valid
    /// afterwards, so that the tid was not reused meanwhile.
    pub fn open(proc_root: BorrowedFd<'_>, tid: u32) -> Result<Self, Errno> {
        let proc_dir = sys::openat(proc_root, &cstr(tid.to_string().as_bytes())?, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let mem = File::from(sys::openat(proc_dir.as_fd(), c"mem", libc::O_RDONLY, 0)?);
        Ok(Target { tid, proc_dir, mem })
    }

    /// Copies the NUL-terminated string at `addr` (at most PATH_MAX bytes with the NUL,
    /// as the kernel's own copy).
    pub fn read_path(&self, addr: u64) -> Result<Vec<u8>, Errno> {
        const PAGE: u64 = 4096;
        let limit = libc::PATH_MAX as usize;
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < limit {
            let chunk = ((PAGE - at % PAGE) as usize).min(limit - out.len());
            let mut buf = vec![0u8; chunk];
            let n = self.mem.read_at(&mut buf, at).map_err(|_| libc::EFAULT)?;
            if n == 0 {
                return Err(libc::EFAULT);
            }
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Err(libc::ENAMETOOLONG)
    }

    fn read_text(&self, name: &std::ffi::CStr) -> Result<String, Errno> {
        let file = File::from(sys::openat(self.proc_dir.as_fd(), name, libc::O_RDONLY, 0)?);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &file, &mut text).map_err(|_| libc::EIO)?;
        Ok(text)
    }

    pub fn umask(&self) -> Result<u32, Errno> {
        self.read_text(c"status")?
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .ok_or(libc::EIO)
    }

    /// The directory a relative path starts from: the cwd for AT_FDCWD, else the
    /// process's descriptor `dirfd` (opened anew from its /proc link).
    pub fn base(&self, dirfd: i32) -> Result<OwnedFd, Errno> {
        let name = if dirfd == libc::AT_FDCWD { "cwd".to_string() } else { format!("fd/{dirfd}") };
        if dirfd != libc::AT_FDCWD && dirfd < 0 {
            return Err(libc::EBADF);
        }
        sys::openat(self.proc_dir.as_fd(), &cstr(name.as_bytes())?, libc::O_PATH, 0).map_err(|e| match e {
            libc::ENOENT => libc::EBADF,
            e => e,
        })
    }

    /// Resolves every component of `dir` from `start` (or `/` for an absolute path),
    /// following symbolic links as the kernel does for intermediate components.
    pub fn walk(&self, root: BorrowedFd<'_>, start: BorrowedFd<'_>, dir: &[u8], links: &mut u32) -> Result<OwnedFd, Errno> {
        let mut cur = if dir.first() == Some(&b'/') { dup(root)? } else { dup(start)? };
        let mut todo: VecDeque<Vec<u8>> = components(dir);
        while let Some(comp) = todo.pop_front() {
            if comp == b".." {
                cur = sys::openat(cur.as_fd(), c"..", libc::O_PATH | libc::O_DIRECTORY, 0)?;
                continue;
            }
            let name = cstr(&comp)?;
            let next = sys::openat(cur.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
            let st = sys::fstat(next.as_fd())?;
            if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                cur = next;
                continue;
            }
            *links += 1;
            if *links > MAX_SYMLINKS {
                return Err(libc::ELOOP);
            }
            if sys::is_procfs(cur.as_fd()) {
                if self.is_proc_root(cur.as_fd()) && (comp == b"self" || comp == b"thread-self") {
                    // The supervised process's own entry, not the supervisor's.
                    let own = if comp == b"self" {
                        vec![self.tid.to_string().into_bytes()]
                    } else {
                        vec![self.tid.to_string().into_bytes(), b"task".to_vec(), self.tid.to_string().into_bytes()]
                    };
                    for c in own.into_iter().rev() {
                        todo.push_front(c);
                    }
                    continue;
                }
                // /proc/<pid>/{cwd,root,fd/N,...} are not text links: let the kernel
                // jump through them, but only the caller's own. The supervisor is PID 1
                // (every process's ancestor) and would be allowed into others',
                // its own descriptors included, where the caller would not.
                if !self.owns(cur.as_fd()) {
                    return Err(libc::EACCES);
                }
                cur = sys::openat(cur.as_fd(), &name, libc::O_PATH, 0)?;
                continue;
            }
            let target = sys::readlinkat(cur.as_fd(), &name)?;
            if target.first() == Some(&b'/') {
                cur = dup(root)?;
            }
            for c in components(&target).into_iter().rev() {
                todo.push_front(c);
            }
        }
        Ok(cur)
    }

    /// `/dev/tty` means the caller's controlling terminal, which the supervisor does
    /// not share: open the process's pseudo-terminal instead.
    pub fn controlling_tty(&self, root: BorrowedFd<'_>, flags: i32) -> Result<OwnedFd, Errno> {
        let text = self.read_text(c"stat")?;
        // Field 7 (tty_nr) counts from after the parenthesised command name.
        let after = text.rsplit_once(')').map(|(_, r)| r).ok_or(libc::EIO)?;
        let tty_nr: u64 = after.split_whitespace().nth(4).and_then(|v| v.parse().ok()).ok_or(libc::EIO)?;
        let major = (tty_nr >> 8) & 0xfff;
        let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
        if !(136..=143).contains(&major) {
            return Err(libc::ENXIO);
        }
        let path = format!("dev/pts/{}", (major - 136) * 256 + minor);
        sys::openat(root, &cstr(path.as_bytes())?, (flags & !(libc::O_CREAT | libc::O_EXCL)) | libc::O_NOFOLLOW, 0)
    }

    /// Whether procfs directory `dir` is outside every `/proc/<pid>`, or inside the
    /// caller's own (its process or one of its threads). Only then may the supervisor
    /// open through it for the caller: everything under another pid is reached with
    /// the rights of PID 1, an ancestor of all, rather than the caller's.
    pub fn owns(&self, dir: BorrowedFd<'_>) -> bool {
        let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())) else { return false };
        let Some(rest) = path.to_str().and_then(|p| p.strip_prefix("/proc")) else { return false };
        let pid = rest.trim_start_matches('/').split('/').next().unwrap_or("");
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return true; // /proc itself, /proc/sys/..., /proc/sysrq-trigger, ...
        }
        pid == self.tid.to_string() || std::path::Path::new(&format!("/proc/{pid}/task/{}", self.tid)).exists()
    }

    fn is_proc_root(&self, fd: BorrowedFd<'_>) -> bool {
        sys::fstat(fd).map(|st| st.st_ino == PROC_ROOT_INO).unwrap_or(false)
    }
}

/// A path split into the directory to walk and the last component.
pub struct Split<'a> {
    pub dir: &'a [u8],
    /// The last component as given, trailing slashes included (they matter to the
    /// kernel: `mkdir("d/")` is fine, `open("f/", O_CREAT)` is EISDIR).
    pub last: &'a [u8],
    /// The last component without trailing slashes: the name that would be created.
    pub name: &'a [u8],
}

pub fn split(path: &[u8]) -> Result<Split<'_>, Errno> {
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    let end = path.iter().rposition(|&b| b != b'/').map(|i| i + 1).unwrap_or(0);
    if end == 0 {
        // Only slashes: the root itself.
        return Ok(Split { dir: b"/", last: b".", name: b"." });
    }
    let trimmed = &path[..end];
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => {
            let dir = if i == 0 { &path[..1] } else { &path[..i] };
            Ok(Split { dir, last: &path[i + 1..], name: &trimmed[i + 1..] })
        }
        None => Ok(Split { dir: b"", last: path, name: trimmed }),
    }
}

fn components(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").map(<[u8]>::to_vec).collect()
}

pub fn cstr(b: &[u8]) -> Result<CString, Errno> {
    CString::new(b).map_err(|_| libc::EINVAL)
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    fd.try_clone_to_owned().map_err(|e| e.raw_os_error().unwrap_or(libc::EMFILE))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(p: &str) -> (String, String, String) {
        let s = split(p.as_bytes()).unwrap();
        let f = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        (f(s.dir), f(s.last), f(s.name))
    }

    #[test]
    fn splits_like_the_kernel_sees_the_last_component() {
        assert_eq!(parts(".git"), ("".into(), ".git".into(), ".git".into()));
        assert_eq!(parts(".git/"), ("".into(), ".git/".into(), ".git".into()));
        assert_eq!(parts("/ws/.git//"), ("/ws".into(), ".git//".into(), ".git".into()));
        assert_eq!(parts("/x"), ("/".into(), "x".into(), "x".into()));
        assert_eq!(parts("a//b"), ("a/".into(), "b".into(), "b".into()));
        assert_eq!(parts("//"), ("/".into(), ".".into(), ".".into()));
        assert!(split(b"").is_err());
        assert_eq!(components(b"/a/./b//c/").into_iter().collect::<Vec<_>>(), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }
}
