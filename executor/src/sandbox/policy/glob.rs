//! Expansion of `glob_pattern` entries, bounded (see the module docs of `policy`).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{GLOB_MAX_MATCHES, GLOB_MAX_VISITED};
use crate::sandbox::error::SandboxError;

/// Expand a glob by walking from its literal prefix, bounded (see module docs).
pub(super) fn expand_glob(pattern: &Path, max_depth: u32) -> Result<Vec<PathBuf>, SandboxError> {
    let pattern_str = pattern.to_str().ok_or_else(|| SandboxError::InvalidPolicy("glob pattern is not valid UTF-8".into()))?;
    let matcher =
        glob::Pattern::new(pattern_str).map_err(|e| SandboxError::InvalidPolicy(format!("invalid glob pattern `{pattern_str}`: {e}")))?;
    let opts = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

    let mut prefix = PathBuf::new();
    for c in pattern.components() {
        let s = c.as_os_str().as_bytes();
        if s.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'{')) {
            break;
        }
        prefix.push(c);
    }
    if prefix == pattern {
        return Ok(vec![pattern.to_path_buf()]);
    }
    let too_broad = || SandboxError::GlobTooBroad { pattern: pattern_str.to_string(), limit: GLOB_MAX_MATCHES };

    let mut out = Vec::new();
    let mut visited = 0usize;
    let mut stack: Vec<(PathBuf, u32)> = vec![(prefix, 0)];
    while let Some((dir, d)) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(_) => continue, // unreadable or vanished: nothing to match below it
        };
        for ent in rd.flatten() {
            visited += 1;
            if visited > GLOB_MAX_VISITED {
                return Err(SandboxError::GlobTooBroad { pattern: pattern_str.to_string(), limit: GLOB_MAX_VISITED });
            }
            let path = ent.path();
            if matcher.matches_path_with(&path, opts) {
                out.push(path.clone());
                if out.len() > GLOB_MAX_MATCHES {
                    return Err(too_broad());
                }
            }
            let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && d + 1 < max_depth {
                stack.push((path, d + 1));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn glob_expansion_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/.env"), "").unwrap();
        std::fs::write(root.join("a/b/.env"), "").unwrap();
        let found = expand_glob(&root.join("**/.env"), 16).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let shallow = expand_glob(&root.join("**/.env"), 2).unwrap();
        assert_eq!(shallow.len(), 1, "{shallow:?}");
    }
}
