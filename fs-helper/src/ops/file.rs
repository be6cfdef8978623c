//! Whole-file and block I/O: `fs/readFile`, `fs/writeFile`, `fs/open`,
//! `fs/readBlock`, `fs/writeBlock`.
//!
//! Memory: readFile encodes straight from the file into the caller's buffer (for the
//! RPC and the helper: the outgoing message itself) through a fixed buffer, and
//! writeFile decodes the base64 text into the file through a fixed buffer, so neither
//! holds a decoded copy of the whole file next to the encoded one.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::error::FsError;
use crate::protocol::{OpenMode, OpenParams, ReadBlockResult, ReadFileParams, ReadFileResult, WriteFileParams};

/// Largest file `fs/readFile` returns. Its base64 form (4/3 of this) is one JSON
/// string in one frame; larger files should use `fs/open` + `fs/readBlock`.
pub const READ_FILE_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Largest decoded payload `fs/writeFile` accepts, for the same reason.
pub const WRITE_FILE_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Largest `len` of one `fs/readBlock`.
pub const READ_BLOCK_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Raw bytes per encode step; a multiple of 3 so only the last step can pad.
const ENCODE_BLOCK: usize = 3 * 64 * 1024;
/// Base64 characters per decode step; a multiple of 4 so blocks align with quads.
const DECODE_BLOCK: usize = 4 * 64 * 1024;

/// `fs/readFile`.
pub fn read_file(p: &ReadFileParams) -> Result<ReadFileResult, FsError> {
    let file = FileToRead::open(p)?;
    let mut out = Vec::with_capacity(file.encoded_len());
    file.append_base64(&mut out)?;
    let data_base64 = String::from_utf8(out).map_err(|e| FsError::Io(io::Error::other(e)))?;
    Ok(ReadFileResult { data_base64 })
}

/// The text of a readFile result object up to the base64 data, and after it.
pub const READ_FILE_RESULT_HEAD: &[u8] = br#"{"dataBase64":""#;
pub const READ_FILE_RESULT_TAIL: &[u8] = br#""}"#;

/// A regular file opened for `fs/readFile`, its reported size within the cap.
pub struct FileToRead {
    file: File,
    size: u64,
    path: PathBuf,
}

impl FileToRead {
    pub fn open(p: &ReadFileParams) -> Result<Self, FsError> {
        let path = p.path.as_path();
        reject_symlink_if_nofollow(path, p.follow_symlinks)?;
        let mut opts = OpenOptions::new();
        opts.read(true);
        let file = open_without_blocking(&mut opts, path, nofollow_flag(p.follow_symlinks))?;
        Self::from_file(file, path)
    }

    /// A file opened elsewhere (by the sandboxed helper, handed over by descriptor),
    /// checked as `open` checks it.
    pub fn from_file(file: File, path: &Path) -> Result<Self, FsError> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(FsError::not_a_file(path));
        }
        if meta.len() > READ_FILE_MAX_BYTES {
            return Err(too_large(path, meta.len()));
        }
        Ok(Self { file, size: meta.len(), path: path.to_path_buf() })
    }

    /// Base64 length of the size the file reported (only a presizing hint).
    pub fn encoded_len(&self) -> usize {
        encoded_len(self.size)
    }

    /// Appends the base64 of the whole file to `out`.
    pub fn append_base64(self, out: &mut Vec<u8>) -> Result<(), FsError> {
        self.encode_blocks(|block| append_base64(block, out))
    }

    /// Writes the base64 of the whole file to `w` block by block, so that a reader
    /// receives the start while the rest is being encoded. An error may come after
    /// part of the data was written.
    pub fn write_base64(self, w: &mut impl Write) -> Result<(), FsError> {
        let mut encoded = Vec::with_capacity(encoded_len(ENCODE_BLOCK as u64));
        self.encode_blocks(|block| {
            encoded.clear();
            append_base64(block, &mut encoded)?;
            w.write_all(&encoded).map_err(FsError::from)
        })
    }

    /// Hands the file to `emit` in blocks of `ENCODE_BLOCK` bytes (the last one shorter).
    fn encode_blocks(self, mut emit: impl FnMut(&[u8]) -> Result<(), FsError>) -> Result<(), FsError> {
        let mut blocks = self.blocks();
        while let Some(block) = blocks.next_block()? {
            emit(block)?;
        }
        Ok(())
    }

    /// The file as base64 one block at a time, for a caller that sends each block
    /// before it reads the next.
    pub fn blocks(self) -> Base64Blocks {
        Base64Blocks {
            reader: self.file.take(READ_FILE_MAX_BYTES + 1),
            buf: vec![0u8; ENCODE_BLOCK],
            total: 0,
            done: false,
            path: self.path,
        }
    }
}

/// The blocks of a [`FileToRead`]. The cap is enforced on what is actually read,
/// because files such as those in /proc report a size of 0 or grow meanwhile.
pub struct Base64Blocks {
    reader: io::Take<File>,
    buf: Vec<u8>,
    total: u64,
    done: bool,
    path: PathBuf,
}

impl Base64Blocks {
    /// Base64 length of one whole block.
    pub const ENCODED_BLOCK_LEN: usize = ENCODE_BLOCK / 3 * 4;

    /// Appends the base64 of the next block to `out`. `Ok(true)`: more may follow;
    /// `Ok(false)`: that was the last block (possibly empty) and the file is done.
    pub fn append_next(&mut self, out: &mut Vec<u8>) -> Result<bool, FsError> {
        match self.next_block()? {
            Some(block) => {
                append_base64(block, out)?;
                Ok(!self.done)
            }
            None => Ok(false),
        }
    }

    /// The next block of raw data (whole blocks until the last); `None` after the last.
    fn next_block(&mut self) -> Result<Option<&[u8]>, FsError> {
        if self.done {
            return Ok(None);
        }
        let n = fill(&mut self.reader, &mut self.buf)?;
        self.total += n as u64;
        if self.total > READ_FILE_MAX_BYTES {
            return Err(too_large(&self.path, self.total));
        }
        self.done = n < self.buf.len();
        Ok(Some(&self.buf[..n]))
    }
}

/// Base64 length of `size` bytes; 0 (no presizing) if that does not fit in memory.
fn encoded_len(size: u64) -> usize {
    usize::try_from(size).ok().and_then(|n| base64::encoded_len(n, true)).unwrap_or(0)
}

fn too_large(path: &Path, size: u64) -> FsError {
    FsError::TooLarge { op: "fs/readFile", path: path.to_path_buf(), size, limit: READ_FILE_MAX_BYTES }
}

/// Encodes into the tail of `out` in place (the block-sized zeroing stays in cache),
/// with the SIMD encoder (AVX2/SSE4.1/NEON picked at run time, scalar otherwise; the
/// output is standard padded base64): encoding is most of a large readFile's CPU time.
fn append_base64(data: &[u8], out: &mut Vec<u8>) -> Result<(), FsError> {
    let start = out.len();
    let len = base64_simd::STANDARD.encoded_length(data.len());
    out.resize(start + len, 0);
    let written = base64_simd::STANDARD.encode(data, base64_simd::Out::from_slice(&mut out[start..])).len();
    out.truncate(start + written);
    Ok(())
}

/// Reads until `buf` is full or EOF; returns the count. Partial reads must not reach
/// the encoder, or padding would appear mid-stream.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `fs/writeFile`. The whole text is validated before the file is touched, so bad
/// base64 leaves an existing file intact, as with the reference (which decodes first).
pub fn write_file(p: &WriteFileParams) -> Result<(), FsError> {
    let path = p.path.as_path();
    let data = p.data_base64.as_bytes();
    validate_base64(data).map_err(FsError::InvalidBase64)?;
    let decoded_len = (data.len() / 4 * 3) as u64;
    if decoded_len > WRITE_FILE_MAX_BYTES + 2 {
        let limit = WRITE_FILE_MAX_BYTES;
        return Err(FsError::DataTooLarge { op: "fs/writeFile", size: decoded_len, limit });
    }
    reject_symlink_if_nofollow(path, p.follow_symlinks)?;
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    let mut file = open_without_blocking(&mut opts, path, nofollow_flag(p.follow_symlinks))?;
    decode_into(data, &mut file)?;
    file.flush()?;
    Ok(())
}

/// Decodes block by block into a scratch buffer. Only the last block may carry
/// padding; if anything is wrong the whole text is decoded once more with the plain
/// decoder purely to obtain its exact error (offset and all), which is the text the
/// reference reports. That second decode only happens on the failure path.
fn validate_base64(data: &[u8]) -> Result<(), base64::DecodeError> {
    let mut scratch = vec![0u8; DECODE_BLOCK / 4 * 3];
    let mut blocks = data.chunks(DECODE_BLOCK).peekable();
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        let padded_early = !last && block.contains(&b'=');
        if padded_early || STANDARD.decode_slice(block, &mut scratch).is_err() {
            return exact_error(data);
        }
    }
    Ok(())
}

fn exact_error(data: &[u8]) -> Result<(), base64::DecodeError> {
    match STANDARD.decode(data) {
        Err(e) => Err(e),
        // Blockwise decoding disagreed with whole decoding; report the first padding
        // byte, which is the only way the two can differ.
        Ok(_) => {
            let at = data.iter().position(|&b| b == b'=').unwrap_or(0);
            Err(base64::DecodeError::InvalidByte(at, b'='))
        }
    }
}

/// Decodes already-validated base64 into `out` block by block.
fn decode_into(data: &[u8], out: &mut impl Write) -> Result<(), FsError> {
    let mut scratch = vec![0u8; DECODE_BLOCK / 4 * 3];
    for block in data.chunks(DECODE_BLOCK) {
        let n = STANDARD.decode_slice(block, &mut scratch).map_err(|e| match e {
            base64::DecodeSliceError::DecodeError(e) => FsError::InvalidBase64(e),
            base64::DecodeSliceError::OutputSliceTooSmall => FsError::Io(io::Error::other("base64 block larger than its buffer")),
        })?;
        out.write_all(&scratch[..n])?;
    }
    Ok(())
}

fn nofollow_flag(follow: Option<bool>) -> libc::c_int {
    if follow == Some(false) {
        libc::O_NOFOLLOW
    } else {
        0
    }
}

/// Opens with O_NONBLOCK so that a FIFO without a peer cannot hang the caller in
/// open(2) (it fails or is refused as "not a file" instead), then clears the flag so
/// that reads and writes on what was opened behave normally. O_NOCTTY: a sandboxed
/// helper is a session leader without a terminal, and opening one must not make it
/// the helper's controlling terminal. (std adds O_CLOEXEC itself.)
pub(crate) fn open_without_blocking(opts: &mut OpenOptions, path: &Path, extra_flags: libc::c_int) -> io::Result<File> {
    let file = opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | extra_flags).open(path)?;
    let flags = fcntl(file.as_raw_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) - OFlag::O_NONBLOCK;
    fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(file)
}

/// Only an explicit `followSymlinks: false` refuses a final symlink (-32600, as the
/// reference does for getMetadata); absent means follow.
pub(crate) fn reject_symlink_if_nofollow(path: &Path, follow: Option<bool>) -> Result<(), FsError> {
    if follow != Some(false) {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(FsError::SymlinkNotFollowed(path.to_path_buf())),
        _ => Ok(()),
    }
}

/// `fs/open`: opens the file for a handle. `read` → O_RDONLY; `replace` →
/// O_WRONLY|O_CREAT|O_TRUNC with mode 0644 (minus umask). Anything but a regular file
/// is refused here, as `fs/readFile` does: a directory would only fail on the first
/// block read, and a FIFO or device handle could block a block read indefinitely.
pub fn open_file(p: &OpenParams) -> Result<File, FsError> {
    let path = p.path.as_path();
    let mut opts = OpenOptions::new();
    match p.mode {
        OpenMode::Read => opts.read(true),
        OpenMode::Replace => opts.write(true).create(true).truncate(true).mode(0o644),
    };
    let file = open_without_blocking(&mut opts, path, 0)?;
    if !file.metadata()?.is_file() {
        return Err(FsError::not_a_file(path));
    }
    Ok(file)
}

/// `fs/readBlock` on an open handle: positional read of up to `len` bytes; `eof` is
/// set only on a short read (protocol.md §17.6).
pub fn read_block(file: &File, offset: u64, len: usize) -> Result<ReadBlockResult, FsError> {
    if len == 0 || len > READ_BLOCK_MAX_BYTES {
        return Err(FsError::BadBlockLen(READ_BLOCK_MAX_BYTES));
    }
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ReadBlockResult { chunk: STANDARD.encode(&buf[..filled]), eof: filled < len })
}

/// `fs/writeBlock` on an open handle: positional write of the decoded chunk.
pub fn write_block(file: &File, offset: u64, chunk_base64: &str) -> Result<(), FsError> {
    let data = STANDARD.decode(chunk_base64).map_err(FsError::InvalidChunkBase64)?;
    file.write_all_at(&data, offset)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::PathUri;
    use std::os::unix::fs::PermissionsExt;

    fn rp(path: &Path) -> ReadFileParams {
        ReadFileParams { path: PathUri(path.into()), follow_symlinks: None }
    }

    fn wp(path: &Path, data: &str) -> WriteFileParams {
        WriteFileParams { path: PathUri(path.into()), data_base64: data.into(), follow_symlinks: None }
    }

    #[test]
    fn write_then_read() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("hello.txt");
        write_file(&wp(&f, "aGVsbG8gd29ybGQK")).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"hello world\n");
        assert_eq!(read_file(&rp(&f)).unwrap().data_base64, "aGVsbG8gd29ybGQK");
    }

    #[test]
    fn read_empty_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("e");
        std::fs::write(&f, b"").unwrap();
        assert_eq!(read_file(&rp(&f)).unwrap().data_base64, "");
    }

    #[test]
    fn read_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = read_file(&rp(&d.path().join("missing"))).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32004, "No such file or directory (os error 2)".into()));
        let e = read_file(&rp(d.path())).unwrap_err();
        assert_eq!(e.code(), -32600);
        assert_eq!(e.to_string(), format!("path `{}` is not a file", d.path().display()));
    }

    #[test]
    fn fifo_does_not_hang() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_file(&rp(&fifo)).unwrap_err();
        assert_eq!(e.to_string(), format!("path `{}` is not a file", fifo.display()));
        let e = write_file(&wp(&fifo, "eA==")).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "No such device or address (os error 6)".into()));
    }

    #[test]
    fn descriptors_are_left_blocking_and_close_on_exec() {
        let d = tempfile::tempdir().unwrap();
        let op = OpenParams { handle_id: "h".into(), path: PathUri(d.path().join("n")), mode: OpenMode::Replace };
        let file = open_file(&op).unwrap();
        let flags = OFlag::from_bits_retain(fcntl(file.as_raw_fd(), FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_NONBLOCK));
        let fd_flags = fcntl(file.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn read_proc_file_with_zero_size() {
        let r = read_file(&rp(Path::new("/proc/self/stat"))).unwrap();
        assert!(!r.data_base64.is_empty());
    }

    #[test]
    fn bad_base64_reports_reference_text_and_keeps_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("keep");
        std::fs::write(&f, b"old").unwrap();
        let e = write_file(&wp(&f, "!!!")).unwrap_err();
        assert_eq!(e.code(), -32600);
        assert_eq!(e.to_string(), "fs/writeFile requires valid base64 dataBase64: Invalid symbol 33, offset 0.");
        assert_eq!(std::fs::read(&f).unwrap(), b"old");
    }

    #[test]
    fn base64_errors_match_whole_decode_across_blocks() {
        let good = "QUJD".repeat(DECODE_BLOCK / 4);
        let cases = [
            format!("{good}{good}!AAA"),
            format!("eA=={good}"),
            format!("{}eA==AAAA", "A".repeat(DECODE_BLOCK - 4)),
            format!("{good}eA"),
            format!("{good}eA="),
        ];
        for c in cases {
            let expected = STANDARD.decode(&c).unwrap_err();
            assert_eq!(validate_base64(c.as_bytes()).unwrap_err(), expected);
        }
        assert!(validate_base64(format!("{good}eA==").as_bytes()).is_ok());
    }

    #[test]
    fn write_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = write_file(&wp(&d.path().join("no/parent"), "eA==")).unwrap_err();
        assert_eq!(e.code(), -32004);
        let e = write_file(&wp(d.path(), "eA==")).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "Is a directory (os error 21)".into()));
    }

    #[test]
    fn write_truncates() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t");
        std::fs::write(&f, b"long old content").unwrap();
        write_file(&wp(&f, "eHl6")).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"xyz");
    }

    #[test]
    fn nofollow_refuses_symlink() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("t");
        std::fs::write(&target, b"x").unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut p = rp(&link);
        assert_eq!(read_file(&p).unwrap().data_base64, "eA==");
        p.follow_symlinks = Some(false);
        assert_eq!(read_file(&p).unwrap_err().code(), -32600);
        let mut w = wp(&link, "eQ==");
        w.follow_symlinks = Some(false);
        assert_eq!(write_file(&w).unwrap_err().code(), -32600);
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn large_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("big");
        let data: Vec<u8> = (0..64u32 * 1024 * 1024 + 7).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let encoded = read_file(&rp(&src)).unwrap().data_base64;
        assert_eq!(encoded.len(), base64::encoded_len(data.len(), true).unwrap());
        let dst = d.path().join("copy");
        write_file(&wp(&dst, &encoded)).unwrap();
        assert!(std::fs::read(&dst).unwrap() == data);
    }

    #[test]
    fn blocks_append_to_what_is_there_as_write_base64_writes() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let data: Vec<u8> = (0..2 * ENCODE_BLOCK + 1).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        let mut out = b"prefix:".to_vec();
        out.extend_from_slice(READ_FILE_RESULT_HEAD);
        let mut blocks = FileToRead::open(&rp(&f)).unwrap().blocks();
        let mut appended = 0;
        while blocks.append_next(&mut out).unwrap() {
            appended += 1;
        }
        out.extend_from_slice(READ_FILE_RESULT_TAIL);
        assert_eq!(appended, 2, "two whole blocks, then the last one");
        let expected = format!(r#"prefix:{{"dataBase64":"{}"}}"#, STANDARD.encode(&data));
        assert!(out == expected.as_bytes());
        let mut written = b"prefix:".to_vec();
        written.extend_from_slice(READ_FILE_RESULT_HEAD);
        FileToRead::open(&rp(&f)).unwrap().write_base64(&mut written).unwrap();
        written.extend_from_slice(READ_FILE_RESULT_TAIL);
        assert!(written == out);
        let e = FileToRead::open(&rp(d.path())).err().unwrap();
        assert_eq!(e.code(), -32600);
    }

    #[test]
    fn open_and_blocks() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("h");
        std::fs::write(&f, b"hello world\n").unwrap();
        let mut op = OpenParams { handle_id: "h1".into(), path: PathUri(f.clone()), mode: OpenMode::Read };
        let file = open_file(&op).unwrap();
        assert_eq!(read_block(&file, 0, 5).unwrap(), ReadBlockResult { chunk: "aGVsbG8=".into(), eof: false });
        assert_eq!(read_block(&file, 6, 100).unwrap(), ReadBlockResult { chunk: "d29ybGQK".into(), eof: true });
        assert_eq!(read_block(&file, 6, 6).unwrap(), ReadBlockResult { chunk: "d29ybGQK".into(), eof: false });
        assert_eq!(read_block(&file, 100, 4).unwrap(), ReadBlockResult { chunk: String::new(), eof: true });
        assert_eq!(read_block(&file, 0, 0).unwrap_err().code(), -32600);
        let e = write_block(&file, 0, "YWJj").unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "Bad file descriptor (os error 9)".into()));

        op.mode = OpenMode::Replace;
        op.path = PathUri(d.path().join("new"));
        let file = open_file(&op).unwrap();
        write_block(&file, 0, "YWJj").unwrap();
        write_block(&file, 3, "ZGVm").unwrap();
        assert_eq!(std::fs::read(d.path().join("new")).unwrap(), b"abcdef");
        let mode = file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o644, 0, "mode {mode:o}");
        op.path = PathUri(d.path().into());
        op.mode = OpenMode::Read;
        assert_eq!(open_file(&op).unwrap_err().code(), -32600);
    }

    #[test]
    fn open_refuses_what_is_not_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut op = OpenParams { handle_id: "h".into(), path: PathUri(fifo.clone()), mode: OpenMode::Read };
        let e = open_file(&op).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32600, format!("path `{}` is not a file", fifo.display())));
        op.mode = OpenMode::Replace;
        let e = open_file(&op).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (-32603, "No such device or address (os error 6)".into()));
        for mode in [OpenMode::Read, OpenMode::Replace] {
            let op = OpenParams { handle_id: "h".into(), path: PathUri("/dev/null".into()), mode };
            let e = open_file(&op).unwrap_err();
            assert_eq!((e.code(), e.to_string()), (-32600, "path `/dev/null` is not a file".into()));
        }
    }
}
