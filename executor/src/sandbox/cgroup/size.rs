//! Byte sizes on the command line (`128M`, `1G`, `4096`) and in messages (`128 MiB`).

/// Parses `N`, `NK`, `NM` or `NG` (powers of 1024, case-insensitive, an optional `B` or
/// `iB` after the suffix). Zero and overflow are refused.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let (digits, shift) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 10),
        Some('m') => (&body[..body.len() - 1], 20),
        Some('g') => (&body[..body.len() - 1], 30),
        Some('t') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| format!("`{text}` is not a size (e.g. 4096, 512K, 128M, 2G)"))?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes == 0 {
        return Err("a memory limit must be above 0".into());
    }
    Ok(bytes)
}

/// `128 MiB`, `2 GiB`, `1536 KiB`, or `N bytes`: the largest unit that divides it.
pub fn human_bytes(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        let size = 1u64 << shift;
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("128M"), Ok(128 << 20));
        assert_eq!(parse_bytes("128MiB"), Ok(128 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("M").is_err());
        assert!(parse_bytes("-1M").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit() {
        assert_eq!(human_bytes(128 << 20), "128 MiB");
        assert_eq!(human_bytes(3 << 29), "1536 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
