//! Capabilities, securebits and the session keyring.
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
    // Bounding set: every index the kernel may know, not just the ones libc names; EINVAL
    // marks the end of the kernel's range. Only what is in it is dropped: each drop
    // commits a new set of credentials, and bwrap left at most CAP_SETPCAP there.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if present < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(format!("cannot read capability {cap} of the bounding set: {err}"));
        }
        // SAFETY: prctl with integer arguments only.
        if present == 1 && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(format!("cannot drop capability {cap} from the bounding set: {err}"));
        }
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(format!("cannot clear ambient capabilities: {}", std::io::Error::last_os_error()));
    }
    // Effective, permitted and inheritable emptied in one call (the bounding set above
    // needed CAP_SETPCAP, so this comes last).
    capset_empty()?;
    verify_no_capabilities()
}

/// Ask the kernel directly (capget and prctl, not /proc, which a sandbox may not have);
/// any bit left in any set is a refusal. The ambient set needs no check of its own: the
/// kernel keeps it a subset of permitted and inheritable, both checked empty here.
pub fn verify_no_capabilities() -> Result<(), String> {
    let [low, high] = capget()?;
    for (name, bits) in [
        ("effective", low.effective as u64 | (high.effective as u64) << 32),
        ("permitted", low.permitted as u64 | (high.permitted as u64) << 32),
        ("inheritable", low.inheritable as u64 | (high.inheritable as u64) << 32),
    ] {
        if bits != 0 {
            return Err(format!("sandbox retained {name} capabilities {bits:016x}"));
        }
    }
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        let bounding = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if bounding < 0 {
            break; // EINVAL: past the kernel's last capability
        }
        if bounding != 0 {
            return Err(format!("sandbox retained capability {cap} in the bounding set"));
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the calling thread's effective, permitted and inheritable sets.
fn capset_empty() -> Result<(), String> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads one header and two data words, exactly what we pass.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(format!("cannot clear capabilities: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The calling thread's capability sets, all 64 bits (version 3 uses two words).
fn capget() -> Result<[CapData; 2], String> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes one header and two data words, exactly what we pass.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) };
    if r != 0 {
        return Err(format!("cannot read capabilities: {}", std::io::Error::last_os_error()));
    }
    Ok(data)
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
