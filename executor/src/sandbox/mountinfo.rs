//! `/proc/self/mountinfo`, parsed: one [`Mount`] per line, the fields the sandbox needs.

use std::path::PathBuf;

/// One line: `id parent major:minor root mountpoint options [optional...] - fstype source super`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The root of the mount within its filesystem (a bind's subdirectory).
    pub root: String,
    pub point: PathBuf,
    /// Per-mount options (`rw`, `nosuid`, ...).
    pub options: Vec<String>,
    pub fstype: String,
    /// Superblock options.
    pub super_options: Vec<String>,
}

impl Mount {
    /// Writable as a mount and as a filesystem.
    pub fn is_writable(&self) -> bool {
        let rw = |o: &[String]| o.iter().any(|o| o == "rw");
        rw(&self.options) && rw(&self.super_options)
    }
}

/// This process's mounts now; empty if the file cannot be read.
pub fn read() -> Vec<Mount> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (head, tail) = line.split_once(" - ")?;
    let fields: Vec<&str> = head.split(' ').collect();
    let tail: Vec<&str> = tail.split(' ').collect();
    let list = |o: Option<&&str>| o.map(|o| o.split(',').map(String::from).collect()).unwrap_or_default();
    Some(Mount {
        root: unescape(fields.get(3)?),
        point: PathBuf::from(unescape(fields.get(4)?)),
        options: list(fields.get(5)),
        fstype: (*tail.first()?).to_owned(),
        super_options: list(tail.get(2)),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_points_options_and_types() {
        let text = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/root rw
35 22 0:32 /sub /mnt/a\\040b ro,nosuid - tmpfs tmpfs rw,size=10k
garbage line
";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!((mounts[0].point.to_str(), mounts[0].is_writable()), (Some("/"), true));
        assert_eq!((mounts[1].point.to_str(), mounts[1].root.as_str(), mounts[1].fstype.as_str()), (Some("/mnt/a b"), "/sub", "tmpfs"));
        assert!(!mounts[1].is_writable(), "a read-only mount of a writable filesystem is not writable");
    }

    #[test]
    fn escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
        assert_eq!(unescape("/end\\040"), "/end ");
    }
}
