//! Builds a child's environment from the client's `env` and optional `envPolicy`
//! (protocol.md §6), applied to the executor's own environment.

use std::collections::HashMap;

use wildmatch::WildMatch;

use crate::protocol::types::{EnvPolicy, Inherit};

/// Names kept by `inherit: "core"`, matched case-insensitively (§17.2).
const CORE_NAMES: &[&str] = &["PATH", "SHELL", "TMPDIR", "TEMP", "TMP", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME", "USER"];

/// Dropped unless `ignoreDefaultExcludes`: these name patterns usually carry credentials.
const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

/// A list of case-insensitive whole-name globs (`*` and `?`).
struct Globs(Vec<WildMatch>);

impl Globs {
    fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        Self(patterns.iter().map(|p| WildMatch::new_case_insensitive(p.as_ref())).collect())
    }
    fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|g| g.matches(name))
    }
}

/// The child environment: without a policy exactly `env`; with one, the policy's steps over
/// `server_env` and then `env` overlaid unfiltered.
pub fn build_child_env(
    server_env: impl IntoIterator<Item = (String, String)>,
    policy: Option<&EnvPolicy>,
    env: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut result = match policy {
        None => HashMap::new(),
        Some(policy) => apply_policy(server_env, policy),
    };
    result.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    result
}

fn apply_policy(server_env: impl IntoIterator<Item = (String, String)>, policy: &EnvPolicy) -> HashMap<String, String> {
    let inherited = server_env.into_iter().filter(|(name, _)| match policy.inherit {
        Inherit::All => true,
        Inherit::None => false,
        Inherit::Core => CORE_NAMES.iter().any(|core| core.eq_ignore_ascii_case(name)),
    });
    let defaults = Globs::new(DEFAULT_EXCLUDES);
    let excludes = Globs::new(&policy.exclude);
    let mut vars: HashMap<String, String> = inherited
        .filter(|(name, _)| policy.ignore_default_excludes || !defaults.matches(name))
        .filter(|(name, _)| !excludes.matches(name))
        .collect();
    vars.extend(policy.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !policy.include_only.is_empty() {
        let keep = Globs::new(&policy.include_only);
        vars.retain(|name, _| keep.matches(name));
    }
    vars
}

/// The executor's own environment as UTF-8 pairs; variables that are not UTF-8 are skipped
/// because the protocol can only carry strings.
pub fn server_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let out = build_child_env(host(), None, &env);
        assert_eq!(out, env);
    }

    #[test]
    fn all_drops_default_excludes_case_insensitively() {
        let out = build_child_env(host(), Some(&policy(Inherit::All)), &HashMap::new());
        assert_eq!(names(&out), ["FOO", "HOME", "KEEP_ME", "LC_ALL", "PATH", "tmp"]);
    }

    #[test]
    fn core_matches_names_case_insensitively() {
        let out = build_child_env(host(), Some(&policy(Inherit::Core)), &HashMap::new());
        assert_eq!(names(&out), ["HOME", "LC_ALL", "PATH", "tmp"]);
    }

    #[test]
    fn exclude_set_and_ignore_default_excludes() {
        let mut p = policy(Inherit::All);
        p.ignore_default_excludes = true;
        p.exclude = vec!["foo".into(), "lc_*".into()];
        p.set = HashMap::from([("NEW".into(), "n".into()), ("FOO".into(), "setwins".into())]);
        let out = build_child_env(host(), Some(&p), &HashMap::new());
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
        let out = build_child_env(host(), Some(&p), &env);
        assert_eq!(names(&out), ["PATH", "Y_TOKEN", "Z"]);
        assert_eq!(out.get("PATH").map(String::as_str), Some("/bin"));
    }

    #[test]
    fn question_mark_matches_one_character() {
        let mut p = policy(Inherit::All);
        p.include_only = vec!["F?O".into()];
        let out = build_child_env(host(), Some(&p), &HashMap::new());
        assert_eq!(names(&out), ["FOO"]);
    }
}
