//! The bwrap compiled into this binary: a sealed memfd (or the packagers' resource
//! file), hashed through its descriptor and compared with the digest built in.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use sha2::{Digest as _, Sha256};

use super::error::io_err;
use super::system::{output_text, parse_version, run_probe};
use super::{hex, DEBUG_REFUSE_MEMFD_EXEC_ENV};
// The digest override exists in debug builds only (tests prove a mismatch is refused).
#[cfg(debug_assertions)]
use super::{parse_hex_digest, DEBUG_EXPECTED_DIGEST_ENV};
use super::{BundledSource, Launcher, LauncherError, Source, RESOURCE_RELATIVE_PATH};

// ---------------------------------------------------------------------------------
// Bundled bwrap
// ---------------------------------------------------------------------------------

/// The digest the bundled bwrap must have. Debug builds let tests inject a different
/// one to prove that a mismatch is refused; release builds cannot be told.
fn expected_digest() -> [u8; 32] {
    #[cfg(debug_assertions)]
    if let Some(v) = std::env::var_os(DEBUG_EXPECTED_DIGEST_ENV) {
        if let Some(d) = v.to_str().and_then(parse_hex_digest) {
            tracing::warn!("{DEBUG_EXPECTED_DIGEST_ENV} overrides the bundled bwrap digest (debug build)");
            return d;
        }
    }
    bwrap_vendor::BWRAP_SHA256
}

fn memfd_exec_refused_for_test() -> bool {
    #[cfg(debug_assertions)]
    if std::env::var_os(DEBUG_REFUSE_MEMFD_EXEC_ENV).is_some_and(|v| v == "1") {
        return true;
    }
    false
}

/// MFD_EXEC (Linux 6.3): ask explicitly for an executable memfd, so that with
/// `vm.memfd_noexec=1` we are not handed a silently non-executable one. Older kernels
/// reject the unknown flag with EINVAL, and we retry without it.
const MFD_EXEC: libc::c_uint = 0x0010;

fn memfd_create(name: &std::ffi::CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string; memfd_create does not retain it.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn add_seals(fd: &File, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument; `fd` is a valid open descriptor.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn get_seals(fd: &File) -> io::Result<libc::c_int> {
    // SAFETY: F_GET_SEALS takes no argument; `fd` is a valid open descriptor.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// SHA-256 of everything readable through `fd`, from offset 0 (pread: independent of,
/// and not moving, the file offset).
pub(super) fn digest_through_fd(fd: &File) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = fd.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&hasher.finalize());
    Ok(out)
}

/// Fills and seals a memfd with the bundled bytes.
pub(super) fn sealed_memfd(bytes: &[u8]) -> io::Result<File> {
    let name = c"executor-bwrap";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let fd = match memfd_create(name, base | MFD_EXEC) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => memfd_create(name, base)?,
        other => other?,
    };
    let mut file = File::from(fd);
    io::Write::write_all(&mut file, bytes)?;
    // F_SEAL_EXEC (6.3+) also freezes the exec bits; older kernels reject it, so it is
    // best effort. WRITE/SHRINK/GROW make the contents immutable, SEAL freezes the set.
    let required = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    if add_seals(&file, required | libc::F_SEAL_EXEC).is_err() {
        add_seals(&file, required)?;
    }
    add_seals(&file, libc::F_SEAL_SEAL)?;
    let seals = get_seals(&file)?;
    let all = required | libc::F_SEAL_SEAL;
    if seals & all != all {
        return Err(io::Error::other(format!("memfd seals incomplete: {seals:#x}")));
    }
    Ok(file)
}

pub(super) fn fd_path(fd: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Runs `<fd path> --version` once: proves that exec through this descriptor works
/// here and reads the version.
pub(super) fn exec_version(fd: &File) -> io::Result<String> {
    let mut cmd = Command::new(fd_path(fd));
    cmd.arg0("bwrap").arg("--version");
    let out = run_probe(cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.starts_with("bubblewrap ") {
        return Err(io::Error::other(format!("`bwrap --version` gave status {} and output {:?}", out.status, output_text(&out).trim())));
    }
    Ok(parse_version(&text).unwrap_or_default())
}

pub(super) fn verify(source_desc: &str, fd: &File) -> Result<([u8; 32], bool), LauncherError> {
    let expected = expected_digest();
    let actual = digest_through_fd(fd).map_err(io_err(format!("hashing {source_desc}")))?;
    if expected == [0u8; 32] {
        tracing::warn!("development build: bundled bwrap digest not checked ({source_desc}, sha256:{})", hex(&actual));
        return Ok((actual, true));
    }
    if actual != expected {
        return Err(LauncherError::DigestMismatch { source_desc: source_desc.to_string(), expected: hex(&expected), actual: hex(&actual) });
    }
    Ok((actual, false))
}

fn bundled_launcher(file: File, digest: [u8; 32], dev_build: bool, version: String, source: BundledSource) -> Launcher {
    Launcher {
        exec_path: fd_path(&file),
        // The bundled build is bubblewrap 0.12.0, which has all three; it is ours, so
        // there is nothing to probe beyond the `--version` exec test.
        supports_argv0: true,
        supports_perms: true,
        supports_as_pid_1: true,
        version: Some(version),
        source: Source::Bundled { file, measured_digest: digest, dev_build, origin: source },
        proc_mountable: OnceLock::new(),
    }
}

fn memfd_launcher() -> Result<Launcher, MemfdFailure> {
    if !bwrap_vendor::BUNDLED {
        return Err(MemfdFailure::Unavailable("built without a bundled bwrap".into()));
    }
    let file = sealed_memfd(bwrap_vendor::BWRAP_BYTES).map_err(|e| {
        MemfdFailure::Unavailable(if e.raw_os_error() == Some(libc::EACCES) {
            format!("executable memfds are refused here (vm.memfd_noexec=2 or an LSM policy): {e}")
        } else {
            format!("creating the sealed memfd failed: {e}")
        })
    })?;
    // Verified through the very descriptor that will be executed.
    let (digest, dev_build) = verify("sealed memfd", &file).map_err(MemfdFailure::Fatal)?;
    if memfd_exec_refused_for_test() {
        return Err(MemfdFailure::Unavailable(format!("{DEBUG_REFUSE_MEMFD_EXEC_ENV}=1 (debug build)")));
    }
    let version = exec_version(&file).map_err(|e| MemfdFailure::Unavailable(format!("exec from memfd refused: {e}")))?;
    Ok(bundled_launcher(file, digest, dev_build, version, BundledSource::Memfd))
}

enum MemfdFailure {
    /// Exec from a memfd does not work here: try the resource file.
    Unavailable(String),
    /// Integrity failure: stop, never fall back.
    Fatal(LauncherError),
}

pub fn resource_path() -> io::Result<PathBuf> {
    let exe = std::fs::canonicalize("/proc/self/exe").or_else(|_| std::env::current_exe())?;
    let dir = exe.parent().ok_or_else(|| io::Error::other("executable has no parent directory"))?;
    Ok(dir.join(RESOURCE_RELATIVE_PATH))
}

fn resource_launcher(memfd_error: String) -> Result<Launcher, LauncherError> {
    let path = resource_path().map_err(io_err("locating the executable"))?;
    let unavailable = |resource: String| LauncherError::BundledUnavailable { memfd: memfd_error.clone(), resource };
    // O_NOFOLLOW on the last component: a symlink planted there is not followed.
    let file = std::fs::OpenOptions::new().read(true).custom_flags_nofollow().open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound && !bwrap_vendor::BUNDLED {
            LauncherError::NoBundled
        } else {
            unavailable(format!("{}: {e}", path.display()))
        }
    })?;
    let meta = file.metadata().map_err(io_err(format!("fstat {}", path.display())))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() {
        return Err(unavailable(format!("{} is not a regular file", path.display())));
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(unavailable(format!("{} is owned by uid {}, neither root nor us", path.display(), meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unavailable(format!("{} is group/other-writable", path.display())));
    }
    let (digest, dev_build) = verify(&path.display().to_string(), &file)?;
    let version = exec_version(&file).map_err(|e| unavailable(format!("exec of {} failed: {e}", path.display())))?;
    Ok(bundled_launcher(file, digest, dev_build, version, BundledSource::ResourceFile { path, memfd_error }))
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}
impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}

fn build_bundled() -> Result<Launcher, LauncherError> {
    match memfd_launcher() {
        Ok(l) => Ok(l),
        Err(MemfdFailure::Fatal(e)) => Err(e),
        Err(MemfdFailure::Unavailable(why)) => {
            tracing::info!("bundled bwrap: {why}; trying {RESOURCE_RELATIVE_PATH}");
            resource_launcher(why)
        }
    }
}

/// The bundled launcher, built once per process. A refusal is cached too (and reported
/// again as the same error) so a refused digest is not re-tried on every command.
pub fn bundled() -> Result<Arc<Launcher>, LauncherError> {
    static BUNDLED: OnceLock<Result<Arc<Launcher>, LauncherError>> = OnceLock::new();
    BUNDLED.get_or_init(|| build_bundled().map(Arc::new)).clone()
}

/// Builds a fresh bundled launcher without the process-wide cache (doctor, tests).
pub fn bundled_uncached() -> Result<Launcher, LauncherError> {
    build_bundled()
}
