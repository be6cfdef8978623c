//! A pseudo-terminal for `tty: true` processes: the child gets the slave as its controlling
//! terminal; the executor reads and writes the master without blocking.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{openpty, Winsize};
use tokio::io::unix::AsyncFd;

/// The size a new terminal reports; the protocol has no resize method.
const DEFAULT_SIZE: Winsize = Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };

pub struct PtyPair {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

pub fn open() -> io::Result<PtyPair> {
    let pty = openpty(Some(&DEFAULT_SIZE), None).map_err(io::Error::from)?;
    Ok(PtyPair { master: pty.master, slave: pty.slave })
}

/// The master side registered with the runtime.
pub struct PtyMaster(AsyncFd<OwnedFd>);

impl PtyMaster {
    pub fn new(master: OwnedFd) -> io::Result<Self> {
        let flags = fcntl(master.as_raw_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        // SAFETY: `OwnedFd` keeps the descriptor open and unchanged until the AsyncFd, which
        // owns it, is dropped; `as_raw_fd` always returns that same descriptor.
        let registered = unsafe { AsyncFd::register(master) };
        registered.map(Self).map_err(|e| io::Error::other(e.to_string()))
    }

    /// Reads output; `Ok(0)` at end of stream. Linux reports a hung-up terminal (every slave
    /// descriptor closed) as EIO, which is the end of the stream here.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.as_raw_fd(), buf).map_err(io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref().as_fd(), data).map_err(io::Error::from)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}
