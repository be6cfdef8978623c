//! Builds a child's environment from the client's `env` and optional `envPolicy`
//! (protocol.md §6), applied to the executor's own environment.

use std::collections::HashMap;

use glob::{MatchOptions, Pattern};

use crate::protocol::types::{EnvPolicy, Inherit};

/// Names kept by `inherit: "core"`, matched case-insensitively (§17.2).
const CORE_NAMES: &[&str] = &["PATH", "SHELL", "TMPDIR", "TEMP", "TMP", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME", "USER"];

/// Dropped unless `ignoreDefaultExcludes`: these name patterns usually carry credentials.
const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

/// A list of case-insensitive whole-name globs (`*` and `?`).
struct Globs(Vec<Pattern>);

/// Names are not paths: `*` also crosses `/` and `.`, and nothing is special at the start.
const NAME_MATCH: MatchOptions =
    MatchOptions { case_sensitive: false, require_literal_separator: false, require_literal_leading_dot: false };

/// An envPolicy glob the matcher could not take (escaping makes every glob valid, so
/// this is refused rather than guessed at, should that ever change).
#[derive(Debug, Clone, thiserror::Error)]
#[error("envPolicy glob {glob:?} cannot be used: {reason}")]
pub struct EnvGlobError {
    glob: String,
    reason: String,
}

impl Globs {
    fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, EnvGlobError> {
        patterns.iter().map(|p| name_glob(p.as_ref())).collect::<Result<_, _>>().map(Self)
    }
    fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|g| g.matches_with(name, NAME_MATCH))
    }
}

/// The pattern for an envPolicy glob, where only `*` and `?` are wildcards: every other
/// character (`[` included) is escaped, and runs of `*` become one (the same match here,
/// and the glob crate reserves `**` for path components).
fn name_glob(glob: &str) -> Result<Pattern, EnvGlobError> {
    let mut escaped = String::with_capacity(glob.len());
    let mut previous_star = false;
    for c in glob.chars() {
        match c {
            '*' if previous_star => {}
            '*' | '?' => escaped.push(c),
            _ => escaped.push_str(&Pattern::escape(c.encode_utf8(&mut [0; 4]))),
        }
        previous_star = c == '*';
    }
    Pattern::new(&escaped).map_err(|e| EnvGlobError { glob: glob.to_owned(), reason: e.msg.to_owned() })
}

/// The child environment: without a policy exactly `env`; with one, the policy's steps over
/// `server_env` and then `env` overlaid unfiltered.
pub fn build_child_env(
    server_env: impl IntoIterator<Item = (String, String)>,
    policy: Option<&EnvPolicy>,
    env: &HashMap<String, String>,
) -> Result<HashMap<String, String>, EnvGlobError> {
    let mut result = match policy {
        None => HashMap::new(),
        Some(policy) => apply_policy(server_env, policy)?,
    };
    result.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(result)
}

fn apply_policy(
    server_env: impl IntoIterator<Item = (String, String)>,
    policy: &EnvPolicy,
) -> Result<HashMap<String, String>, EnvGlobError> {
    let inherited = server_env.into_iter().filter(|(name, _)| match policy.inherit {
        Inherit::All => true,
        Inherit::None => false,
        Inherit::Core => CORE_NAMES.iter().any(|core| core.eq_ignore_ascii_case(name)),
    });
    let defaults = Globs::new(DEFAULT_EXCLUDES)?;
    let excludes = Globs::new(&policy.exclude)?;
    let mut vars: HashMap<String, String> = inherited
        .filter(|(name, _)| policy.ignore_default_excludes || !defaults.matches(name))
        .filter(|(name, _)| !excludes.matches(name))
        .collect();
    vars.extend(policy.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !policy.include_only.is_empty() {
        let keep = Globs::new(&policy.include_only)?;
        vars.retain(|name, _| keep.matches(name));
    }
    Ok(vars)
}

/// The executor's own environment as UTF-8 pairs; variables that are not UTF-8 are skipped
/// because the protocol can only carry strings.
pub fn server_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_star_and_question_mark_are_wildcards() {
        let globs = |p: &str| Globs::new(&[p]).expect("a valid glob");
        assert!(globs("A[B").matches("a[b"), "`[` is a character, and case is ignored");
        assert!(!globs("[AB]").matches("A"));
        assert!(globs("**KEY**").matches("MY_KEY"), "runs of stars are one star");
        assert!(globs("a*c").matches("a/b.c"), "names are not paths");
        assert!(globs("T?KEN").matches("token") && !globs("T?KEN").matches("TKEN"));
        assert!(!globs("KEY").matches("MY_KEY"), "whole names only");
        assert!(globs("").matches("") && !globs("").matches("X"));
    }

    fn host() -> Vec<(String, String)> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("tmp", "/t"),
            ("FOO", "bar"),
            ("MY_API_KEY", "k"),
            ("some_token", "t"),
            ("A_SECRET_X", "s"),
            ("KEEP_ME", "1"),
            ("LC_ALL", "C"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn policy(inherit: Inherit) -> EnvPolicy {
        EnvPolicy { inherit, ignore_default_excludes: false, exclude: vec![], set: HashMap::new(), include_only: vec![] }
    }

    fn names(env: &HashMap<String, String>) -> Vec<&str> {
        let mut v: Vec<&str> = env.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn no_policy_is_exactly_env() {
        let env = HashMap::from([("X".to_string(), "1".to_string())]);
        let out = build_child_env(host(), None, &env).expect("env");
        assert_eq!(out, env);
    }

    #[test]
    fn all_drops_default_excludes_case_insensitively() {
        let out = build_child_env(host(), Some(&policy(Inherit::All)), &HashMap::new()).expect("env");
        assert_eq!(names(&out), ["FOO", "HOME", "KEEP_ME", "LC_ALL", "PATH", "tmp"]);
    }

    #[test]
    fn core_matches_names_case_insensitively() {
        let out = build_child_env(host(), Some(&policy(Inherit::Core)), &HashMap::new()).expect("env");
        assert_eq!(names(&out), ["HOME", "LC_ALL", "PATH", "tmp"]);
    }

    #[test]
    fn exclude_set_and_ignore_default_excludes() {
        let mut p = policy(Inherit::All);
        p.ignore_default_excludes = true;
        p.exclude = vec!["foo".into(), "lc_*".into()];
        p.set = HashMap::from([("NEW".into(), "n".into()), ("FOO".into(), "setwins".into())]);
        let out = build_child_env(host(), Some(&p), &HashMap::new()).expect("env");
        assert_eq!(out.get("FOO").map(String::as_str), Some("setwins"));
        assert!(out.contains_key("MY_API_KEY") && out.contains_key("some_token"));
        assert!(!out.contains_key("LC_ALL"));
    }

    #[test]
    fn include_only_applies_after_set_and_overlay_is_unfiltered() {
        let mut p = policy(Inherit::None);
        p.set = HashMap::from([("S_TOKEN".into(), "x".into()), ("Z".into(), "z".into())]);
        p.include_only = vec!["z".into(), "path".into()];
        let env = HashMap::from([("PATH".into(), "/bin".into()), ("Y_TOKEN".into(), "o".into())]);
        let out = build_child_env(host(), Some(&p), &env).expect("env");
        assert_eq!(names(&out), ["PATH", "Y_TOKEN", "Z"]);
        assert_eq!(out.get("PATH").map(String::as_str), Some("/bin"));
    }

    #[test]
    fn question_mark_matches_one_character() {
        let mut p = policy(Inherit::All);
        p.include_only = vec!["F?O".into()];
        let out = build_child_env(host(), Some(&p), &HashMap::new()).expect("env");
        assert_eq!(names(&out), ["FOO"]);
    }
}
