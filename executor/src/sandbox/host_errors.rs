//! Turns bwrap's terse stderr into an explanation of what the host refused and how to
//! fix it. The texts matched are bubblewrap's own (0.4 … 0.12), see `RULES`.
//!
//! Matching is on stable fragments of bwrap's messages, never on paths: bubblewrap 0.12
//! changed "Can't mount proc on /newroot/proc" to "… on /proc", which broke the
//! reference's detector.

/// One known failure: every fragment in `all` must occur (case-sensitive, as bwrap
/// prints them), then `cause` and `fix` are reported.
struct Rule {
    all: &'static [&'static str],
    cause: &'static str,
    fix: &'static str,
}

/// Where the AppArmor profile and the other ways around the restriction are written up
/// (a page of the executor's repository; the FIX names it).
pub const APPARMOR_DOC: &str = "docs/apparmor.md";

/// The fix texts, one per host cause: bwrap's stderr (`RULES`) and `executor doctor`'s own
/// probes name the same cause with the same words.
pub mod fixes {
    pub const APPARMOR_USERNS: &str = "AppArmor restricts unprivileged user namespaces here (Ubuntu 23.10+, GitHub-hosted runners): \
`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (persist it in /etc/sysctl.d/), or load an AppArmor profile \
that grants `userns,` to the executor binary: docs/apparmor.md in the executor's repository has the profile and the steps";
    pub const MAX_USER_NAMESPACES: &str = "`sysctl -w user.max_user_namespaces=15000` (persist it in /etc/sysctl.d/); \
if the executor already runs inside another sandbox or nested containers, the nesting limit is reached: run it outside";
    pub const UNPRIVILEGED_USERNS_CLONE: &str = "`sysctl -w kernel.unprivileged_userns_clone=1` on Debian-style kernels \
(persist it in /etc/sysctl.d/)";
    pub const CONTAINER_BLOCKS_USERNS: &str = "a container or seccomp policy blocks unshare(CLONE_NEWUSER): in Docker/Podman \
start the container with `--security-opt seccomp=unconfined` (or a profile allowing clone/unshare with CLONE_NEWUSER), \
or treat the container as the boundary and run commands unsandboxed (danger-full-access)";
    pub const NO_USER_NAMESPACES: &str = "use a kernel built with CONFIG_USER_NS=y (every mainstream distribution kernel has it)";
    pub const CONTAINER_UNCONFINED: &str =
        "start the container with `--security-opt seccomp=unconfined --security-opt apparmor=unconfined`, \
or treat the container as the boundary and run commands unsandboxed (danger-full-access)";
    pub const POLICY_WITHHOLDS_CAPS: &str = "a security policy (AppArmor/SELinux/seccomp of a container) withholds capabilities \
inside new user namespaces: allow user namespaces for the executor in that policy";
    pub const OLD_BWRAP: &str = "install bubblewrap >= 0.9, or start the executor with `--bwrap bundled`";
}

use fixes::APPARMOR_USERNS as APPARMOR_FIX;

const RULES: &[Rule] = &[
    Rule {
        all: &["Creating new namespace failed", "max_"],
        cause: "the kernel refused a new user namespace: user.max_user_namespaces is 0 here, or the namespace nesting limit (32) is reached",
        fix: fixes::MAX_USER_NAMESPACES,
    },
    Rule {
        all: &["Creating new namespace failed", "No space left on device"],
        cause: "the kernel refused a new user namespace: user.max_user_namespaces is 0 here, or the namespace nesting limit (32) is reached",
        fix: fixes::MAX_USER_NAMESPACES,
    },
    Rule {
        all: &["No permissions to create a new namespace"],
        cause: "the host does not let this user create user namespaces: a Debian-style `kernel.unprivileged_userns_clone=0`, or a container runtime whose seccomp profile blocks unshare(CLONE_NEWUSER) (Docker's default)",
        fix: "on Debian-style kernels `sysctl -w kernel.unprivileged_userns_clone=1`; otherwise a container or seccomp policy blocks unshare(CLONE_NEWUSER): in Docker/Podman start the container with `--security-opt seccomp=unconfined`, or treat the container as the boundary (danger-full-access)",
    },
    Rule {
        all: &["Creating new namespace failed, likely because the kernel does not support user namespaces"],
        cause: "this kernel was built without user namespaces (CONFIG_USER_NS)",
        fix: fixes::NO_USER_NAMESPACES,
    },
    Rule {
        all: &["Creating new namespace failed", "Operation not permitted"],
        cause: "creating namespaces is forbidden here: a container or seccomp policy blocks unshare/clone of namespaces (typical in Docker/Podman without privileges)",
        fix: fixes::CONTAINER_UNCONFINED,
    },
    Rule {
        all: &["setting up uid map"],
        cause: "the new user namespace could not map the user (writing /proc/self/uid_map was refused); on Ubuntu this is the AppArmor user-namespace restriction",
        fix: APPARMOR_FIX,
    },
    Rule {
        all: &["setting up gid map"],
        cause: "the new user namespace could not map the group (writing /proc/self/gid_map was refused); on Ubuntu this is the AppArmor user-namespace restriction",
        fix: APPARMOR_FIX,
    },
    Rule {
        all: &["error writing to setgroups"],
        cause: "the new user namespace could not deny setgroups; on Ubuntu this is the AppArmor user-namespace restriction",
        fix: APPARMOR_FIX,
    },
    Rule {
        all: &["loopback: Failed RTM_NEW"],
        cause: "the loopback interface of the sandbox's network namespace could not be configured: the user namespace has no CAP_NET_ADMIN (Ubuntu's AppArmor restriction of unprivileged user namespaces, or a container that drops it)",
        fix: APPARMOR_FIX,
    },
    Rule {
        all: &["loopback: Failed to create NETLINK_ROUTE socket"],
        cause: "the sandbox's network namespace cannot open a netlink socket (a seccomp/LSM policy of the host or container forbids it)",
        fix: "allow NETLINK_ROUTE sockets in the container's seccomp profile (`--security-opt seccomp=unconfined`)",
    },
    Rule {
        all: &["Can't mount proc on"],
        cause: "a fresh /proc cannot be mounted: the host's /proc has masked or read-only sub-mounts (Docker/Podman mask /proc/kcore, /proc/sys …), and the kernel refuses a new procfs that would reveal more",
        fix: "Podman: `--security-opt unmask=ALL`; Docker: `--security-opt systempaths=unconfined`; without that, the executor masks /proc inside the sandbox instead of exposing the host's",
    },
    Rule {
        all: &["Failed to make / slave"],
        cause: "mount propagation cannot be changed in this environment (container without the needed privileges, e.g. an overlayfs root with a restrictive profile)",
        fix: fixes::CONTAINER_UNCONFINED,
    },
    Rule {
        all: &["Can't mount tmpfs on"],
        cause: "mounting a tmpfs inside the sandbox was refused (container or LSM policy)",
        fix: fixes::CONTAINER_UNCONFINED,
    },
    Rule {
        all: &["Failed to mount tmpfs"],
        cause: "mounting the sandbox's root tmpfs was refused (container or LSM policy)",
        fix: fixes::CONTAINER_UNCONFINED,
    },
    Rule {
        all: &["Can't mount devpts"],
        cause: "a private devpts cannot be mounted here (container policy)",
        fix: fixes::CONTAINER_UNCONFINED,
    },
    Rule {
        all: &["pivot_root"],
        cause: "pivot_root failed: the executor runs from a root that cannot be pivoted (initramfs/rootfs or a chroot)",
        fix: "run the executor from a regular mount namespace (not a chroot or initramfs)",
    },
    Rule {
        all: &["Unknown option --argv0"],
        cause: "this bwrap is older than 0.9.0 and lacks --argv0",
        fix: fixes::OLD_BWRAP,
    },
    Rule {
        all: &["Unknown option --perms"],
        cause: "this bwrap is older than 0.5.0 and lacks --perms",
        fix: fixes::OLD_BWRAP,
    },
    Rule {
        all: &["Can't mount on symlink destination"],
        cause: "bubblewrap >= 0.12 refuses to mount onto a symlink; a sandbox path reached through a symlink was not canonicalised",
        fix: "this is an executor bug: report it with the path shown; meanwhile pass canonical (symlink-free) paths",
    },
    Rule {
        all: &["execvp", "No such file or directory"],
        cause: "the program to start inside the sandbox is not visible there (not under a readable root of the profile)",
        fix: "make the program's directory readable in the permission profile, or use an absolute path that is",
    },
];

/// A recognised bwrap failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// bwrap's own line that was recognised.
    pub line: String,
    pub cause: &'static str,
    pub fix: &'static str,
}

/// Finds the first bwrap line in `stderr` that names a known host problem.
pub fn diagnose(stderr: &str) -> Option<Diagnosis> {
    // Only bwrap's own lines: the sandboxed command's output may contain anything.
    stderr.lines().map(str::trim).filter(|l| l.starts_with("bwrap:")).find_map(|line| {
        RULES.iter().find(|r| r.all.iter().all(|f| line.contains(f))).map(|r| Diagnosis {
            line: line.to_string(),
            cause: r.cause,
            fix: r.fix,
        })
    })
}

/// Explains a bwrap failure from its stderr, or `None` when the text is not a known
/// host problem. The result names the cause and a concrete `FIX:`.
pub fn explain_bwrap_failure(stderr: &str) -> Option<String> {
    diagnose(stderr).map(|d| format!("{} ({}). FIX: {}", d.cause, d.line, d.fix))
}

/// The line the executor adds to a sandboxed command's stderr (server) or prints itself
/// (`executor sandbox`) when bwrap failed for a known host reason.
pub fn explanation_line(stderr: &str) -> Option<String> {
    explain_bwrap_failure(stderr).map(|explanation| format!("executor: {explanation}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The doctor's probes and bwrap's stderr name a cause with the same fix text.
    #[test]
    fn bwrap_messages_and_the_doctor_share_fix_texts() {
        let fix = |line: &str| diagnose(line).map(|d| d.fix);
        assert_eq!(fix("bwrap: Creating new namespace failed: No space left on device"), Some(fixes::MAX_USER_NAMESPACES));
        assert_eq!(fix("bwrap: setting up uid map: Permission denied"), Some(fixes::APPARMOR_USERNS));
        assert_eq!(fix("bwrap: Failed to make / slave: Permission denied"), Some(fixes::CONTAINER_UNCONFINED));
        assert_eq!(fix("bwrap: Unknown option --argv0"), Some(fixes::OLD_BWRAP));
    }

    fn explain(s: &str) -> String {
        explain_bwrap_failure(s).unwrap_or_else(|| panic!("no explanation for {s:?}"))
    }

    #[test]
    fn debian_unprivileged_userns_disabled() {
        let e = explain("bwrap: No permissions to create a new namespace, likely because the kernel does not allow non-privileged user namespaces. On e.g. debian this can be enabled with 'sysctl kernel.unprivileged_userns_clone=1'.\n");
        assert!(e.contains("kernel.unprivileged_userns_clone=1"), "{e}");
        assert!(e.contains("seccomp=unconfined"), "{e}");
    }

    #[test]
    fn uid_map_permission_denied_points_to_apparmor() {
        let e = explain("bwrap: setting up uid map: Permission denied\n");
        assert!(e.contains("apparmor_restrict_unprivileged_userns=0"), "{e}");
        assert!(e.contains("userns,"), "{e}");
        assert!(e.contains(APPARMOR_DOC), "{e}");
        assert!(e.contains("setting up uid map: Permission denied"), "original line kept: {e}");
    }

    #[test]
    fn namespace_eperm_is_container_policy() {
        let e = explain("bwrap: Creating new namespace failed: Operation not permitted");
        assert!(e.contains("container"), "{e}");
        assert!(!e.contains("max_user_namespaces"), "{e}");
    }

    #[test]
    fn namespace_enospc_is_max_user_namespaces() {
        let e = explain("bwrap: Creating new namespace failed: nesting depth or /proc/sys/user/max_*_namespaces exceeded (ENOSPC)");
        assert!(e.contains("sysctl -w user.max_user_namespaces=15000"), "{e}");
        let e = explain("bwrap: Creating new namespace failed: No space left on device");
        assert!(e.contains("user.max_user_namespaces"), "{e}");
    }

    #[test]
    fn proc_mount_both_wordings() {
        for s in [
            "bwrap: Can't mount proc on /newroot/proc: Operation not permitted",
            "bwrap: Can't mount proc on /proc: Operation not permitted",
            "bwrap: Can't mount proc on /proc: Invalid argument",
        ] {
            let e = explain(s);
            assert!(e.contains("unmask=ALL"), "{e}");
            assert!(e.contains("masks /proc"), "{e}");
        }
    }

    #[test]
    fn loopback_addr_and_link() {
        for s in
            ["bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted", "bwrap: loopback: Failed RTM_NEWLINK: Operation not permitted"]
        {
            let e = explain(s);
            assert!(e.contains("CAP_NET_ADMIN"), "{e}");
            assert!(e.contains("apparmor_restrict_unprivileged_userns=0"), "{e}");
        }
    }

    #[test]
    fn old_bwrap_options() {
        assert!(explain("bwrap: Unknown option --argv0").contains(">= 0.9"));
        assert!(explain("bwrap: Unknown option --perms").contains("--bwrap bundled"));
    }

    #[test]
    fn other_lines_are_ignored() {
        assert_eq!(explain_bwrap_failure(""), None);
        assert_eq!(explain_bwrap_failure("bwrap: Can't find source path /nope: No such file or directory"), None);
        // The sandboxed command printing a bwrap-like text is not a bwrap failure.
        assert_eq!(explain_bwrap_failure("my tool says: setting up uid map: Permission denied"), None);
    }

    #[test]
    fn first_known_bwrap_line_wins_among_noise() {
        let e = explain("warning: something\nbwrap: setting up uid map: Permission denied\n");
        assert!(e.contains("uid_map"), "{e}");
    }

    #[test]
    fn the_apparmor_page_exists_and_holds_the_profile() {
        let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(APPARMOR_DOC);
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(APPARMOR_FIX.contains(APPARMOR_DOC));
        assert!(text.contains("userns,") && text.contains("apparmor_parser -r"), "{text}");
    }
}
