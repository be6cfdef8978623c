//! Passing an open file descriptor over a Unix socket (SCM_RIGHTS), used by the
//! sandboxed helper to hand `fs/open` results to the executor.
//!
//! The executor and its helper use a `SOCK_SEQPACKET` pair: message boundaries hold, so
//! one receive takes exactly one hand-off and a stale or oversized message cannot run
//! into the next one. `send_fd`/`recv_fd` also work on stream sockets.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    getsockname, getsockopt, recvmsg, sendmsg, sockopt, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockType,
    SockaddrLike, SockaddrStorage,
};
use nix::sys::stat::{fstat, SFlag};

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

/// Takes ownership of descriptor `raw`, inherited by number (the helper's
/// `--fd-socket N`), after checking that it is an open `AF_UNIX` `SOCK_SEQPACKET`
/// socket. On error nothing is closed: a descriptor that is not what was announced is
/// not ours to close. The adopted descriptor is made close-on-exec.
pub fn adopt_seqpacket_socket(raw: RawFd) -> io::Result<OwnedFd> {
    if raw <= libc::STDERR_FILENO {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("descriptor {raw} is a standard stream")));
    }
    // SAFETY: F_GETFD only reads the flags of a descriptor number; it fails with EBADF
    // when the number is not open, and then nothing below runs.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    check_seqpacket(raw)?;
    // SAFETY: `raw` is open (checked above) and was handed to this process by number at
    // startup, so nothing else in the process owns it; it is adopted exactly once here.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    Ok(fd)
}

fn check_seqpacket(raw: RawFd) -> io::Result<()> {
    let wrong = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("descriptor {raw} is {what}"));
    let stat = fstat(raw)?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(wrong("not a socket"));
    }
    let family = getsockname::<SockaddrStorage>(raw)?.family();
    if family != Some(AddressFamily::Unix) {
        return Err(wrong("not a Unix socket"));
    }
    // SAFETY: `raw` is open for the duration of this call (checked by the caller) and
    // the borrow does not outlive it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    if getsockopt(&borrowed.as_fd(), sockopt::SockType)? != SockType::SeqPacket {
        return Err(wrong("not a SOCK_SEQPACKET socket"));
    }
    Ok(())
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
    use std::os::fd::IntoRawFd;

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
    fn adopts_only_an_open_unix_seqpacket_socket() {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::empty()).unwrap();
        let raw = b.into_raw_fd();
        let adopted = adopt_seqpacket_socket(raw).unwrap();
        assert_eq!(adopted.as_raw_fd(), raw);
        let flags = nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "the adopted socket is close-on-exec");
        let f = tempfile::tempfile().unwrap();
        send_fd(adopted.as_fd(), f.as_fd(), b"h").unwrap();
        let mut buf = [0u8; 4];
        let (n, fd) = recv_fd(a.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_some()), (&b"h"[..], true));

        let (stream, _peer) = pair();
        let e = adopt_seqpacket_socket(stream.as_raw_fd()).unwrap_err();
        assert!(e.to_string().contains("not a SOCK_SEQPACKET socket"), "{e}");
        let (r, _w) = nix::unistd::pipe().unwrap();
        let e = adopt_seqpacket_socket(r.as_raw_fd()).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        // The refused descriptors were not closed by the failed adoption.
        assert!(nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).is_ok());
        assert!(nix::fcntl::fcntl(stream.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).is_ok());
        let udp = nix::sys::socket::socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).unwrap();
        let e = adopt_seqpacket_socket(udp.as_raw_fd()).unwrap_err();
        assert!(e.to_string().contains("not a Unix socket"), "{e}");
        assert_eq!(adopt_seqpacket_socket(1_000_000).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(adopt_seqpacket_socket(1).unwrap_err().kind(), io::ErrorKind::InvalidInput);
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
