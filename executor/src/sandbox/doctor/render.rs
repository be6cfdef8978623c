//! The report for a person: one section per probe, then the verdict.

use super::verdict::kind_name;
use super::{diagnose, launcher, BundledSource, Report, Verdict};

fn yes(b: bool) -> &'static str {
    if b {
        "ok  "
    } else {
        "FAIL"
    }
}

pub fn render_human(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
    let _ = writeln!(o, "executor doctor{}", if r.running_as_root { " (running as root)" } else { "" });
    if let Some(c) = &r.container {
        let _ = writeln!(o, "  container: {c}");
    }
    let u = &r.user_namespaces;
    let _ = writeln!(o, "\n[{}] user namespaces", yes(u.attempt.ok));
    let _ = writeln!(o, "      kernel.unprivileged_userns_clone = {}", opt(&u.unprivileged_userns_clone));
    let _ = writeln!(o, "      user.max_user_namespaces = {}", opt(&u.max_user_namespaces));
    let _ = writeln!(o, "      kernel.apparmor_restrict_unprivileged_userns = {}", opt(&u.apparmor_restrict_unprivileged_userns));
    if let (Some(step), Some(err)) = (&u.attempt.failed_step, &u.attempt.error) {
        let _ = writeln!(o, "      attempt failed at {step}: {err}");
    } else {
        let _ = writeln!(o, "      attempt: created user+mount+pid+net+ipc+uts namespaces");
    }
    if let Some(f) = &u.attempt.fix {
        let _ = writeln!(o, "      FIX: {f}");
    }
    let _ = writeln!(
        o,
        "\n[{}] landlock: {}",
        yes(r.landlock.abi.is_some()),
        r.landlock.abi.map(|a| format!("ABI {a}")).unwrap_or_else(|| r.landlock.error.clone().unwrap_or_default())
    );
    if let Some(f) = &r.landlock.fix {
        let _ = writeln!(o, "      FIX: {f}");
    }
    let _ = writeln!(
        o,
        "\n[{}] seccomp filters (current mode {})",
        yes(r.seccomp.filters_available),
        r.seccomp.current_mode.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
    );
    if let Some(f) = &r.seccomp.fix {
        let _ = writeln!(o, "      FIX: {f}");
    }
    let _ = writeln!(o, "\n[{}] system bwrap", yes(r.system_bwrap.selected.is_some()));
    if r.system_bwrap.candidates.is_empty() {
        let _ = writeln!(o, "      none on PATH");
    }
    for c in &r.system_bwrap.candidates {
        let shown = c.canonical.as_ref().unwrap_or(&c.found_at);
        if c.usable {
            let _ = writeln!(
                o,
                "      {} bubblewrap {}: --argv0 {}, --perms {}, --as-pid-1 {}",
                shown.display(),
                c.version.as_deref().unwrap_or("?"),
                c.supports_argv0 == Some(true),
                c.supports_perms == Some(true),
                c.supports_as_pid_1 == Some(true)
            );
        } else {
            let _ = writeln!(o, "      {} rejected: {}", shown.display(), c.rejected_because.as_deref().unwrap_or("?"));
        }
    }
    let b = &r.bundled_bwrap;
    let _ = writeln!(o, "\n[{}] bundled bwrap {}", yes(b.usable), if b.included { b.version.as_str() } else { "(not built in)" });
    let _ =
        writeln!(o, "      expected sha256:{}{}", b.expected_sha256, if b.dev_build { " (development build: not verified)" } else { "" });
    if let Some(m) = &b.measured_sha256 {
        let _ = writeln!(o, "      measured sha256:{m} through the executed descriptor");
    }
    match &b.source {
        Some(BundledSource::Memfd) => {
            let _ = writeln!(o, "      runs from a sealed memfd");
        }
        Some(BundledSource::ResourceFile { path, .. }) => {
            let _ = writeln!(o, "      runs from {}", path.display());
        }
        None => {}
    }
    if let Some(e) = &b.error {
        let _ = writeln!(o, "      error: {e}");
    }
    let m = &r.memfd_exec;
    let status = match m.exec_ok {
        Some(ok) => yes(ok),
        None => "n/a ",
    };
    let _ = writeln!(o, "\n[{status}] memfd exec (vm.memfd_noexec = {})", opt(&m.memfd_noexec));
    if let Some(e) = &m.error {
        let _ = writeln!(o, "      {e}");
        let _ = writeln!(
            o,
            "      FIX: `sysctl -w vm.memfd_noexec=0`, or install the bwrap as {} next to the executor",
            launcher::RESOURCE_RELATIVE_PATH
        );
    }
    let _ = writeln!(
        o,
        "\n[info] cgroup v2: {}",
        if r.cgroup_v2.available {
            format!("yes ({})", r.cgroup_v2.controllers.join(" "))
        } else {
            "no (/sys/fs/cgroup/cgroup.controllers missing)".into()
        }
    );
    let _ = writeln!(o, "\n[info] resource limits: {}", r.limits.mechanism);
    for f in &r.limits.limits {
        let mark = if f.holds_for_tree { "ok" } else { "!!" };
        let _ = writeln!(o, "  [{mark}] {} {}: {}", f.limit, f.value, f.mechanism);
    }
    for p in &r.limits.problems {
        let _ = writeln!(o, "      {p}");
    }
    if let Some(s) = &r.smoke_test {
        let _ = writeln!(o, "\n[{}] test run: bwrap {}", yes(s.ok), s.argv.join(" "));
        if let Some(e) = &s.stderr {
            let _ = writeln!(o, "      bwrap said: {e}");
        }
        if let Some(d) = s.stderr.as_deref().and_then(diagnose) {
            let _ = writeln!(o, "      cause: {}", d.cause);
            let _ = writeln!(o, "      FIX: {}", d.fix);
        }
    }
    o.push_str(&render_verdict(&r.verdict));
    o
}

/// The verdict block: what runs, each layer, each problem with its fix; a line that
/// would repeat an earlier one is left out.
fn render_verdict(v: &Verdict) -> String {
    let mut lines = vec![format!(
        "\nVerdict: {}",
        if v.sandbox_enforceable { "a sandbox CAN be enforced" } else { "NO sandbox can be enforced on this host" }
    )];
    lines.push(match &v.launcher {
        Some(l) => format!("  launcher: {} bwrap {} ({})", kind_name(l.kind), l.version.as_deref().unwrap_or("?"), l.exec_path.display()),
        None => "  launcher: none (the problem below says why)".to_string(),
    });
    for layer in &v.layers {
        let state = match (layer.enforced, layer.available) {
            (true, _) => "enforced",
            (false, true) => "present ",
            (false, false) => "missing ",
        };
        lines.push(format!("  [{state}] {}: {}", layer.name, layer.detail));
    }
    if v.layers.iter().any(|l| l.available && !l.enforced) {
        lines.push("  (present: this host has it, but it is not applied while no sandbox can run)".into());
    }
    for p in &v.problems {
        lines.push(format!("  problem: {}", p.what));
        lines.push(format!("    FIX: {}", p.fix));
    }
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        if seen.insert(line.clone()) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}
