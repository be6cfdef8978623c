//! Landlock: a second, mount-independent filesystem layer mirroring the plan.
//!
//! Read roots get read/execute, writable roots get every filesystem right; `/dev` (the
//! sandbox's own devtmpfs) gets every right and `/proc` read plus write-file. Anything
//! else is denied even if a mount would allow it. Landlock cannot carve a `none` path
//! out of an allowed parent; the mount layer masks those.
//!
//! With network restricted, TCP bind/connect are handled with no rule (denied, ABI 4+).
//! Abstract UNIX sockets and signals outside the sandbox are scoped away (ABI 6+).
//! Best effort: on an older kernel the missing rights are dropped; without Landlock at
//! all the ruleset is not enforced and the other layers remain. The requested ABI is
//! pinned to V6, whose rights were reviewed for this policy.

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, ABI,
};

use super::InnerConfig;

const ABI_PINNED: ABI = ABI::V6;

/// Returns a one-line description of what was enforced.
pub fn apply(config: &InnerConfig) -> Result<String, landlock::RulesetError> {
    let all = AccessFs::from_all(ABI_PINNED);
    let read = AccessFs::from_read(ABI_PINNED);
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::BestEffort).handle_access(all)?;
    if !config.net {
        ruleset = ruleset.handle_access(AccessNet::from_all(ABI_PINNED))?;
    }
    ruleset = ruleset.scope(Scope::from_all(ABI_PINNED))?;
    let mut created = ruleset.create()?;

    let mut rules: Vec<(&std::path::Path, landlock::BitFlags<AccessFs>)> = Vec::new();
    for p in &config.ro {
        rules.push((p.as_path(), read));
    }
    for p in &config.rw {
        rules.push((p.as_path(), all));
    }
    rules.push((std::path::Path::new("/dev"), all));
    rules.push((std::path::Path::new("/proc"), read | AccessFs::WriteFile));

    for (path, access) in rules {
        // A root that is not visible in this view (e.g. under a mask) has nothing to allow.
        let Ok(fd) = PathFd::new(path) else { continue };
        created = created.add_rule(PathBeneath::new(fd, access))?;
    }
    let status = created.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => format!("fully enforced ({:?})", status.landlock),
        RulesetStatus::PartiallyEnforced => format!("partially enforced ({:?})", status.landlock),
        RulesetStatus::NotEnforced => format!("not enforced ({:?})", status.landlock),
    })
}
