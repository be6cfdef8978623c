//! Capabilities, securebits and the session keyring.
//!
//! bwrap leaves us CAP_SETPCAP only (`--cap-drop ALL --cap-add CAP_SETPCAP`), which is
//! what locking the securebits and shrinking the bounding set need. After this module
//! no capability is left in any set, and the securebits make sure none comes back: exec
//! as uid 0 grants nothing (NOROOT), setuid transitions keep the sets empty
//! (NO_SETUID_FIXUP), ambient raising is impossible, and the bits are locked.

use ::caps::{errors::CapsError, CapSet};

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

pub fn drop_all_and_verify() -> Result<(), String> {
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) } != 0 {
        return Err(format!("cannot lock securebits: {}", std::io::Error::last_os_error()));
    }
    // Bounding set: every index the kernel may know, not just the ones the caps crate
    // names; EINVAL marks the end of the kernel's range.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(format!("cannot drop capability {cap} from the bounding set: {err}"));
        }
    }
    let clear = |set: CapSet| ::caps::clear(None, set).map_err(|e: CapsError| format!("cannot clear {set:?} capabilities: {e}"));
    clear(CapSet::Ambient)?;
    clear(CapSet::Inheritable)?;
    clear(CapSet::Effective)?;
    clear(CapSet::Permitted)?;
    verify_no_capabilities()
}

/// Read the kernel's view; any bit left in any set is a refusal.
pub fn verify_no_capabilities() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("cannot read /proc/self/status to verify capabilities: {e}"))?;
    let mut seen = 0;
    for line in status.lines() {
        for key in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            if let Some(v) = line.strip_prefix(key) {
                seen += 1;
                let v = u64::from_str_radix(v.trim(), 16).map_err(|e| format!("cannot parse {key} {v:?}: {e}"))?;
                if v != 0 {
                    return Err(format!("sandbox retained capabilities: {key} {v:016x}"));
                }
            }
        }
    }
    if seen != 5 {
        return Err("cannot verify capabilities: /proc/self/status lacks capability lines".into());
    }
    Ok(())
}

/// Replace the inherited session keyring with a new anonymous one, so that keys the
/// executor holds are not reachable even if keyctl were allowed.
pub fn join_fresh_session_keyring() -> Result<(), std::io::Error> {
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a NULL name takes no memory from us.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<libc::c_char>()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
