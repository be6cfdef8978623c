//! Capabilities (through the `caps` crate), securebits and the session keyring.
//!
//! bwrap leaves us CAP_SETPCAP only (`--cap-drop ALL --cap-add CAP_SETPCAP`), which is
//! what locking the securebits and shrinking the bounding set need. After this module
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

/// Locks the securebits, then empties every capability set through the `caps` crate and
/// checks with the kernel that nothing is left.
pub fn drop_all_and_verify() -> Result<(), String> {
    lock_securebits()?;
    // Only what is in the bounding set is dropped: each drop commits a new set of
    // credentials, and bwrap left at most CAP_SETPCAP there. It needs CAP_SETPCAP, so it
    // comes before the other sets are emptied.
    caps::clear(None, CapSet::Bounding).map_err(|e| format!("cannot empty the bounding set: {e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("cannot clear ambient capabilities: {e}"))?;
    // Effective first: the kernel keeps it a subset of permitted. Each clear zeroes the
    // whole set, bits this crate has no name for included.
    for set in [CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        caps::clear(None, set).map_err(|e| format!("cannot clear the {} set: {e}", set_name(set)))?;
    }
    verify_no_capabilities()
}

/// Exec as uid 0 grants nothing (NOROOT), setuid transitions keep the sets empty
/// (NO_SETUID_FIXUP), ambient raising is impossible, and the bits are locked. The `caps`
/// crate has no securebits call, so this one is made directly.
fn lock_securebits() -> Result<(), String> {
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    super::sys::prctl(libc::PR_SET_SECUREBITS, bits).map(drop).map_err(|e| format!("cannot lock securebits: {e}"))
}

/// Ask the kernel directly (capget and prctl, not /proc, which a sandbox may not have);
/// any capability left in any set is a refusal. The ambient set needs no check of its
/// own: the kernel keeps it a subset of permitted and inheritable, both checked here.
pub fn verify_no_capabilities() -> Result<(), String> {
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable, CapSet::Bounding] {
        let left = caps::read(None, set).map_err(|e| format!("cannot read the {} set: {e}", set_name(set)))?;
        if !left.is_empty() {
            let mut names: Vec<String> = left.iter().map(ToString::to_string).collect();
            names.sort();
            return Err(format!("sandbox retained {} capabilities {}", set_name(set), names.join(",")));
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
            return Err(format!("sandbox retained capability {cap} in the bounding set"));
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
