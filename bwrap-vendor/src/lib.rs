//! The bundled bubblewrap: bytes and SHA-256 digest, computed at build time.
//!
//! `build.rs` compiles bubblewrap from the pinned sources (see PROVENANCE.md), hashes
//! the resulting file and generates these items. The digest is what the executor
//! verifies at run time, through the sealed memfd it executes from.
//!
//! A build with `EXECUTOR_NO_BUNDLED_BWRAP=1` has no bundled bwrap: `BWRAP_BYTES` is
//! empty, `BWRAP_SHA256` is all zero and `BUNDLED` is false (a development build that
//! the executor reports as such).

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// True when the all-zero digest marks a development build (verification is skipped
/// and the executor says so).
pub fn is_dev_build() -> bool {
    BWRAP_SHA256 == [0u8; 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_digest_agree() {
        if !BUNDLED {
            assert!(BWRAP_BYTES.is_empty());
            assert!(is_dev_build());
            return;
        }
        use std::fmt::Write as _;
        assert!(BWRAP_BYTES.starts_with(b"\x7fELF"));
        assert_eq!(BWRAP_VERSION, "0.12.0");
        // Independent check with sha256sum rather than the same library as build.rs.
        let dir = std::env::temp_dir().join(format!("bwrap-vendor-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("bwrap");
        std::fs::write(&file, BWRAP_BYTES).expect("write copy");
        let out = std::process::Command::new("sha256sum").arg(&file).output().expect("sha256sum");
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut expected = String::new();
        for b in BWRAP_SHA256 {
            let _ = write!(expected, "{b:02x}");
        }
        assert_eq!(text.split_whitespace().next(), Some(expected.as_str()));
    }
}
