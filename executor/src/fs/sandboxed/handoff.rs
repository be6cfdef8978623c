//! The `fs/open` hand-off: the helper opens the file inside the sandbox and sends the
//! descriptor over a `SOCK_SEQPACKET` pair (one message per hand-off, so a leftover
//! cannot run into the next open), tagged with the handleId.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::fs::FsServiceError;

/// Reference text for an ok reply to `fs/open` without a descriptor.
pub const NO_TRANSFER: &str = "fs sandbox helper did not transfer its opened file descriptor";

/// The hand-off pair: (our non-blocking end, the helper's blocking end), both
/// close-on-exec here so no other child the executor starts inherits them.
pub fn handoff_socketpair() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    let flags = OFlag::from_bits_retain(fcntl(ours.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(ours.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok((ours, theirs))
}

/// Receives the descriptor queued for the `fs/open` of `handle_id`. An `Err` means the
/// helper broke the hand-off protocol (it is then discarded, so a stray message cannot
/// be matched to a later open).
pub fn take_handoff(sock: BorrowedFd<'_>, handle_id: &str) -> Result<File, FsServiceError> {
    // send_fd sends an empty payload as one 0 byte.
    let expected: &[u8] = if handle_id.is_empty() { &[0] } else { handle_id.as_bytes() };
    // One byte more than expected, so a longer (truncated) message cannot match.
    let mut buf = vec![0u8; expected.len() + 1];
    let fd = match fs_helper::helper::recv_fd(sock, &mut buf) {
        Ok((n, Some(fd))) if buf[..n] == *expected => fd,
        Ok((_, Some(_))) => {
            return Err(FsServiceError::HelperFailed("fs sandbox helper transferred a descriptor for another handle".into()))
        }
        Ok((_, None)) => return Err(FsServiceError::HelperFailed(NO_TRANSFER.into())),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(FsServiceError::HelperFailed(NO_TRANSFER.into())),
        Err(e) => return Err(FsServiceError::HelperFailed(format!("fs sandbox helper failed: cannot receive its descriptor: {e}"))),
    };
    // The helper already refuses anything else; checked again because this descriptor
    // crosses from the sandbox into the executor.
    let file = File::from(fd);
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(FsServiceError::HelperFailed("fs sandbox helper transferred a descriptor that is not a regular file".into()));
    }
    Ok(file)
}

/// After a failed `fs/open`, drops anything queued anyway (nothing is expected).
pub fn discard_handoff(sock: BorrowedFd<'_>) {
    let mut buf = [0u8; 1];
    while let Ok((n, fd)) = fs_helper::helper::recv_fd(sock, &mut buf) {
        drop(fd);
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fs_helper::helper::send_fd;
    use std::io::Write;
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        handoff_socketpair().unwrap()
    }

    fn message(r: Result<File, FsServiceError>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn takes_the_descriptor_announced_for_the_handle() {
        let (ours, theirs) = pair();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        send_fd(theirs.as_fd(), f.as_fd(), b"h1").unwrap();
        let got = take_handoff(ours.as_fd(), "h1").unwrap();
        assert_eq!(got.metadata().unwrap().len(), 3);
        send_fd(theirs.as_fd(), f.as_fd(), b"").unwrap();
        assert!(take_handoff(ours.as_fd(), "").is_ok(), "an empty id travels as one 0 byte");
    }

    #[test]
    fn refuses_a_missing_mismatched_or_irregular_handoff() {
        let (ours, theirs) = pair();
        // Nothing queued: answered at once (the socket is non-blocking), not waited for.
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), NO_TRANSFER);
        let f = tempfile::tempfile().unwrap();
        for sent in [&b"h2"[..], b"h", b"h1-longer"] {
            send_fd(theirs.as_fd(), f.as_fd(), sent).unwrap();
            let e = message(take_handoff(ours.as_fd(), "h1"));
            assert_eq!(e, "fs sandbox helper transferred a descriptor for another handle", "{sent:?}");
        }
        let (r, _w) = nix::unistd::pipe().unwrap();
        send_fd(theirs.as_fd(), r.as_fd(), b"h").unwrap();
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), "fs sandbox helper transferred a descriptor that is not a regular file");
        nix::unistd::write(&theirs, b"h").unwrap();
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), NO_TRANSFER, "a message without a descriptor");
        drop(theirs);
        assert_eq!(message(take_handoff(ours.as_fd(), "h")), NO_TRANSFER, "the helper's end is closed");
    }

    #[test]
    fn a_failed_open_leaves_nothing_queued() {
        let (ours, theirs) = pair();
        let f = tempfile::tempfile().unwrap();
        send_fd(theirs.as_fd(), f.as_fd(), b"stale").unwrap();
        send_fd(theirs.as_fd(), f.as_fd(), b"stale2").unwrap();
        discard_handoff(ours.as_fd());
        send_fd(theirs.as_fd(), f.as_fd(), b"next").unwrap();
        assert!(take_handoff(ours.as_fd(), "next").is_ok(), "the next open is not matched with a stale message");
    }
}
