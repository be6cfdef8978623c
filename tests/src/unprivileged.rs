//! Running the executor as the unprivileged user `executor-test` (created by
//! ci/setup-sandbox-users.sh) through `setpriv`. Every helper here FAILS (not skips) when
//! the user is missing or cannot create user namespaces: a test that needs the real
//! unprivileged sandbox must not pass without it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const TEST_USER: &str = "executor-test";

/// (uid, gid) of the test user, after checking that it can create a user namespace.
pub fn test_user_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let user = nix::unistd::User::from_name(TEST_USER)
            .unwrap_or_else(|e| panic!("cannot look up user `{TEST_USER}`: {e}"))
            .unwrap_or_else(|| panic!("user `{TEST_USER}` does not exist: run ci/setup-sandbox-users.sh as root first"));
        let ids = (user.uid.as_raw(), user.gid.as_raw());
        let out = Command::new("setpriv")
            .args(setpriv_args(ids))
            .args(["bwrap", "--unshare-user", "--ro-bind", "/", "/", "true"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run setpriv: {e}"));
        assert!(
            out.status.success(),
            "user namespaces are unavailable for unprivileged user `{TEST_USER}` on this host; the sandbox cannot \
             run unprivileged here. bwrap said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids
    })
}

/// `setpriv` arguments that switch to `(uid, gid)` with no supplementary groups.
pub fn setpriv_args((uid, gid): (u32, u32)) -> Vec<String> {
    vec!["--reuid".into(), uid.to_string(), "--regid".into(), gid.to_string(), "--clear-groups".into(), "--".into()]
}

/// A copy of `built` the test user can execute (the target directory may not be
/// readable by it). Copied once per test binary to a fixed world-readable place,
/// atomically, because several test binaries may race.
pub fn user_binary(built: &Path) -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = PathBuf::from("/tmp/executor-sandbox-test-bin");
        let fail = |what: &str, e: std::io::Error| panic!("{what} {}: {e}", dir.display());
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail("cannot create", e));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| fail("cannot chmod", e));
        let tmp = dir.join(format!(".executor.{}", std::process::id()));
        // Copied by another process: while this one held the copy open for writing, a
        // child forked meanwhile by another test thread would hold it too, and an exec
        // of the binary in that window fails with ETXTBSY ("Text file busy").
        let copied =
            Command::new("cp").arg(built).arg(&tmp).status().unwrap_or_else(|e| panic!("cannot run cp into {}: {e}", dir.display()));
        assert!(copied.success(), "cp of the executor into {} failed", dir.display());
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| fail("cannot chmod in", e));
        let dst = dir.join("executor");
        std::fs::rename(&tmp, &dst).unwrap_or_else(|e| fail("cannot install the executor in", e));
        dst
    })
}

/// Gives a host tree to `(uid, gid)` (symlinks themselves, not their targets), so that
/// only the sandbox can stop that user's writes there.
pub fn chown_tree((uid, gid): (u32, u32), path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{gid}")])
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run chown: {e}"));
    assert!(status.success(), "chown of {} failed", path.display());
}

/// `executor --listen stdio` run as root (`None`) or as `(uid, gid)`, in `cwd`, with a
/// plain PATH, `env`, and the launcher named by `$EXECUTOR_TEST_BWRAP` (when set), after
/// the handshake.
pub fn serve_stdio_as(user: Option<(u32, u32)>, cwd: &Path, env: &[(&str, &str)]) -> crate::Executor {
    let mut command = match user {
        None => Command::new(crate::executor_bin()),
        Some(ids) => {
            let mut c = Command::new("setpriv");
            c.args(setpriv_args(ids)).arg(user_binary(&crate::executor_bin()));
            c
        }
    };
    command.args(["--listen", "stdio"]);
    if let Ok(launcher) = std::env::var("EXECUTOR_TEST_BWRAP") {
        command.args(["--bwrap", &launcher]);
    }
    command.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").envs(env.iter().copied()).current_dir(cwd);
    let mut server = crate::Executor::spawn(command);
    server.handshake();
    server
}

/// For each `scenario(user: Option<(u32, u32)>)`, a module with two tests: `as_root`
/// (`None`) and `unprivileged` (the test user's ids).
#[macro_export]
macro_rules! as_root_and_unprivileged {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn as_root() {
                super::$scenario(None)
            }
            #[test]
            fn unprivileged() {
                super::$scenario(Some($crate::unprivileged::test_user_ids()))
            }
        }
    )*};
}
