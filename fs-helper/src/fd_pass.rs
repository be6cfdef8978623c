//! Passing an open file descriptor over a Unix socket (SCM_RIGHTS), used by the
//! sandboxed helper to hand `fs/open` results to the executor.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Most descriptors accepted in one message; any beyond the first are closed.
const MAX_FDS: usize = 4;

/// Sends `fd` with `payload` as one message. A stream socket carries ancillary data
/// only alongside at least one byte, so an empty payload is sent as a single 0 byte.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, payload: &[u8]) -> io::Result<()> {
    let data: &[u8] = if payload.is_empty() { &[0] } else { payload };
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let sent = retry(|| sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(data)], &cmsgs, MsgFlags::MSG_NOSIGNAL, None))?;
    send_rest(sock, &data[sent..])
}

/// A stream socket may take the payload in parts; the descriptor went with the first.
fn send_rest(sock: BorrowedFd<'_>, mut rest: &[u8]) -> io::Result<()> {
    while !rest.is_empty() {
        let n = retry(|| sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(rest)], &[], MsgFlags::MSG_NOSIGNAL, None))?;
        rest = &rest[n..];
    }
    Ok(())
}

/// Receives one message into `buf`; returns the byte count and the descriptor that
/// came with it, if any. Received descriptors are close-on-exec.
pub fn recv_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    // Not via `retry`: the message borrows the buffers, which a retried closure cannot.
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            other => break other.map_err(io::Error::from)?,
        }
    };
    let bytes = msg.bytes;
    let mut first = None;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for raw in fds {
                let owned = own(raw);
                // Extra descriptors are dropped (closed) so they cannot leak.
                if first.is_none() {
                    first = Some(owned);
                }
            }
        }
    }
    Ok((bytes, first))
}

fn own(raw: RawFd) -> OwnedFd {
    // SAFETY: `raw` was just installed in our descriptor table by the kernel as part
    // of this SCM_RIGHTS message; nothing else refers to it, so taking sole ownership
    // is sound and it is closed exactly once, when the OwnedFd drops.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::fs::File;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).unwrap()
    }

    #[test]
    fn passes_a_descriptor_with_payload() {
        let (a, b) = pair();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"through the socket").unwrap();
        f.rewind().unwrap();
        send_fd(a.as_fd(), f.as_fd(), b"h1").unwrap();
        drop(f);
        let mut buf = [0u8; 16];
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"h1");
        let mut got = String::new();
        File::from(fd.unwrap()).read_to_string(&mut got).unwrap();
        assert_eq!(got, "through the socket");
    }

    #[test]
    fn empty_payload_still_carries_the_descriptor() {
        let (a, b) = pair();
        let f = tempfile::tempfile().unwrap();
        send_fd(a.as_fd(), f.as_fd(), b"").unwrap();
        let mut buf = [0u8; 4];
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, buf[0]), (1, 0));
        assert!(fd.is_some());
    }

    #[test]
    fn plain_message_has_no_descriptor() {
        let (a, b) = pair();
        nix::unistd::write(&a, b"xy").unwrap();
        let mut buf = [0u8; 4];
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(n, 2);
        assert!(fd.is_none());
    }
}
