//! Capabilities (through the `caps` crate), securebits and the session keyring.
//!
//! bwrap leaves us CAP_SETPCAP (`--cap-drop ALL --cap-add CAP_SETPCAP`), which is what
//! locking the securebits and shrinking the bounding set need, and CAP_SYS_ADMIN only
//! when the late binds (the step before this one) need it. After this module
//! no capability is left in any set, and the securebits make sure none comes back: exec
//! as uid 0 grants nothing (NOROOT), setuid transitions keep the sets empty
//! (NO_SETUID_FIXUP), ambient raising is impossible, and the bits are locked.

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

use caps::CapSet;

/// Why the capability step refused to go on: each failure names its set.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("cannot lock securebits: {0}")]
    Securebits(#[source] std::io::Error),
    #[error("cannot clear the {set} set: {reason}")]
    Clear { set: &'static str, reason: String },
    #[error("cannot read the {set} set: {reason}")]
    Read { set: &'static str, reason: String },
    #[error("sandbox retained {set} capabilities {names}")]
    Retained { set: &'static str, names: String },
    #[error("sandbox retained capability {0} in the bounding set")]
    RetainedByNumber(u32),
}

fn clear(set: CapSet) -> Result<(), CapabilityError> {
    caps::clear(None, set).map_err(|e| CapabilityError::Clear { set: set_name(set), reason: e.to_string() })
}

/// Locks the securebits, then empties every capability set through the `caps` crate and
/// checks with the kernel that nothing is left.
pub fn drop_all_and_verify() -> Result<(), CapabilityError> {
    lock_securebits()?;
    // Only what is in the bounding set is dropped: each drop commits a new set of
    // credentials, and bwrap left at most CAP_SETPCAP and CAP_SYS_ADMIN there. It needs CAP_SETPCAP, so it
    // comes before the other sets are emptied. Effective before permitted: the kernel
    // keeps it a subset. Each clear zeroes the whole set, bits this crate has no name for
    // included.
    for set in [CapSet::Bounding, CapSet::Ambient, CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        clear(set)?;
    }
    verify_no_capabilities()
}

/// Exec as uid 0 grants nothing (NOROOT), setuid transitions keep the sets empty
/// (NO_SETUID_FIXUP), ambient raising is impossible, and the bits are locked. The `caps`
/// crate has no securebits call, so this one is made directly.
fn lock_securebits() -> Result<(), CapabilityError> {
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    super::sys::prctl(libc::PR_SET_SECUREBITS, bits).map(drop).map_err(CapabilityError::Securebits)
}

/// Ask the kernel directly (capget and prctl, not /proc, which a sandbox may not have);
/// any capability left in any set is a refusal. The ambient set needs no check of its
/// own: the kernel keeps it a subset of permitted and inheritable, both checked here.
pub fn verify_no_capabilities() -> Result<(), CapabilityError> {
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable, CapSet::Bounding] {
        let left = caps::read(None, set).map_err(|e| CapabilityError::Read { set: set_name(set), reason: e.to_string() })?;
        if !left.is_empty() {
            let mut names: Vec<String> = left.iter().map(ToString::to_string).collect();
            names.sort();
            return Err(CapabilityError::Retained { set: set_name(set), names: names.join(",") });
        }
    }
    // The bounding set by number as well, past the capabilities this crate can name: a
    // newer kernel's capability must not survive unseen.
    let known = caps::all().iter().map(|c| c.index()).max().unwrap_or(0);
    for cap in u32::from(known) + 1..64 {
        let Ok(bounding) = super::sys::prctl(libc::PR_CAPBSET_READ, cap.into()) else {
            break; // EINVAL: past the kernel's last capability
        };
        if bounding != 0 {
            return Err(CapabilityError::RetainedByNumber(cap));
        }
    }
    Ok(())
}

fn set_name(set: CapSet) -> &'static str {
    match set {
        CapSet::Ambient => "ambient",
        CapSet::Bounding => "bounding",
        CapSet::Effective => "effective",
        CapSet::Inheritable => "inheritable",
        CapSet::Permitted => "permitted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check must see capabilities wherever there are some: a root test process
    /// holds a full set, an unprivileged one none.
    #[test]
    fn verification_matches_the_processes_privilege() {
        let root = nix::unistd::geteuid().is_root();
        let result = verify_no_capabilities();
        assert_eq!(result.is_err(), root, "{result:?}");
    }
}
