//! From the facts to the verdict: which layers are enforced, and every missing piece with
//! the fix for its own cause, each cause once.

use super::{diagnose, launcher, BundledBwrap, Landlock, Launcher, LauncherKind, Layer, Problem, Seccomp, SmokeTest, UserNamespaces};

/// What the verdict is drawn from.
pub(super) struct Facts {
    pub(super) user_namespaces: UserNamespaces,
    pub(super) landlock: Landlock,
    pub(super) seccomp: Seccomp,
    pub(super) selected: Result<std::sync::Arc<Launcher>, launcher::LauncherError>,
    pub(super) smoke: Option<SmokeTest>,
    pub(super) guard_kernel: bool,
}

impl Facts {
    pub(super) fn enforceable(&self) -> bool {
        self.smoke.as_ref().is_some_and(|s| s.ok)
    }

    fn proc_masked(&self) -> bool {
        self.smoke.as_ref().is_some_and(|s| s.proc_masked)
    }

    fn guard_enforced(&self) -> bool {
        self.enforceable() && self.guard_kernel && !self.proc_masked()
    }

    /// Every missing piece, each with the fix for its own cause, each cause once.
    pub(super) fn problems(&self, bundled: &BundledBwrap) -> Vec<Problem> {
        let mut problems = Vec::new();
        problems.extend(self.namespace_problems());
        if let Err(e) = &self.selected {
            problems.push(Problem { what: format!("no usable bwrap: {e}"), fix: e.fix() });
        }
        if let (Some(f), None) = (&self.landlock.fix, self.landlock.abi) {
            let what = format!("Landlock unavailable: {}", self.landlock.error.as_deref().unwrap_or(""));
            problems.push(Problem { what, fix: f.clone() });
        }
        if let Some(f) = &self.seccomp.fix {
            let what = format!("seccomp filters unavailable: {}", self.seccomp.error.as_deref().unwrap_or(""));
            problems.push(Problem { what, fix: f.clone() });
        }
        problems.extend(bundled_problems(bundled));
        problems.extend(self.guard_problem());
        problems
    }

    /// User namespaces refused and the bwrap run that failed: one cause when the first
    /// explains the second, so the verdict does not give the same fix twice.
    fn namespace_problems(&self) -> Vec<Problem> {
        let attempt = &self.user_namespaces.attempt;
        let smoke = self.smoke.as_ref().filter(|s| !s.ok || s.proc_masked);
        if attempt.ok {
            return smoke.map(smoke_problem).into_iter().collect();
        }
        let what = format!(
            "user namespaces refused at {}: {}",
            attempt.failed_step.as_deref().unwrap_or("?"),
            attempt.error.as_deref().unwrap_or("?")
        );
        let fix = attempt.fix.clone().unwrap_or_default();
        match smoke {
            Some(s) if !s.ok => {
                vec![Problem { what: format!("{what}; so bwrap fails: {}", s.stderr.as_deref().unwrap_or("")), fix }]
            }
            Some(s) => vec![Problem { what, fix }, smoke_problem(s)],
            None => vec![Problem { what, fix }],
        }
    }

    fn guard_problem(&self) -> Option<Problem> {
        if !self.enforceable() || self.guard_enforced() {
            return None;
        }
        Some(Problem {
            what: "missing protected names (.git, .codex, ...) in writable roots can be created: the create guard cannot run here".into(),
            fix: if self.guard_kernel {
                "let sandboxes mount their own /proc (in a container: run it without masked /proc paths, e.g. `--security-opt systempaths=unconfined`), or create the protected directories before running commands".into()
            } else {
                "upgrade to Linux 5.14 or newer, or create the protected directories before running commands".into()
            },
        })
    }

    pub(super) fn layers(&self) -> Vec<Layer> {
        let enforceable = self.enforceable();
        let landlock_abi = self.landlock.abi;
        let seccomp = self.seccomp.filters_available;
        vec![
            Layer { name: "namespaces (bwrap)", enforced: enforceable, available: enforceable, detail: self.namespace_detail() },
            Layer {
                name: "no_new_privs + capability drop",
                enforced: enforceable,
                available: true,
                detail: "applied by the inner stage".into(),
            },
            Layer {
                name: "landlock",
                enforced: enforceable && landlock_abi.is_some(),
                available: landlock_abi.is_some(),
                detail: landlock_abi.map(|a| format!("ABI {a}")).unwrap_or_else(|| "unavailable".into()),
            },
            Layer {
                name: "seccomp",
                enforced: enforceable && seccomp,
                available: seccomp,
                detail: if seccomp { "filters available".into() } else { "unavailable".into() },
            },
            Layer {
                name: "create guard (missing protected names)",
                enforced: self.guard_enforced(),
                available: self.guard_kernel && !self.proc_masked(),
                detail: match (self.guard_kernel, self.proc_masked()) {
                    (false, _) => crate::sandbox::inner::guard::KERNEL_NEEDED.into(),
                    (true, true) => "needs the sandbox's own /proc, which this host masks".into(),
                    (true, false) => "seccomp user notification".into(),
                },
            },
        ]
    }

    fn namespace_detail(&self) -> String {
        match (&self.selected, &self.smoke) {
            (Ok(l), Some(s)) if s.ok => format!(
                "{} bwrap {} at {}{}",
                kind_name(l.kind()),
                l.version.as_deref().unwrap_or("?"),
                l.exec_path.display(),
                if s.proc_masked { "; /proc masked" } else { "" }
            ),
            (Ok(_), _) => "bwrap fails on this host".into(),
            (Err(_), _) => "no usable bwrap".into(),
        }
    }
}

pub(super) fn kind_name(kind: LauncherKind) -> &'static str {
    match kind {
        LauncherKind::System => "system",
        LauncherKind::Bundled => "bundled",
    }
}

/// The test run failed (or needed /proc masked) for a reason of its own.
fn smoke_problem(s: &SmokeTest) -> Problem {
    let stderr = s.stderr.as_deref().unwrap_or("");
    if s.ok {
        return Problem {
            what: "a fresh /proc cannot be mounted; sandboxes get an empty, masked /proc".into(),
            fix: s.fix.clone().unwrap_or_default(),
        };
    }
    Problem {
        what: match diagnose(stderr) {
            Some(d) => format!("bwrap could not create the sandbox: {} ({})", d.cause, d.line),
            None => format!("bwrap could not create the sandbox: {stderr}"),
        },
        fix: s.fix.clone().unwrap_or_else(|| "unknown bwrap failure: see its message".into()),
    }
}

fn bundled_problems(b: &BundledBwrap) -> Vec<Problem> {
    let mut problems = Vec::new();
    if b.dev_build {
        problems.push(Problem {
            what: "development build: the bundled bwrap's digest is not pinned".into(),
            fix: "build the executor without EXECUTOR_NO_BUNDLED_BWRAP (needs libcap-dev and a C compiler)".into(),
        });
    }
    if let (Some(e), Some(fix), true) = (&b.error, &b.fix, bwrap_vendor::BUNDLED) {
        problems.push(Problem { what: format!("bundled bwrap unusable: {e}"), fix: fix.clone() });
    }
    problems
}
