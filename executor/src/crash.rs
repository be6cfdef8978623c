//! Panics are bugs of the executor, never the client's fault, and are reported as such.
//!
//! The processes the executor starts from its own binary (the sandbox's inner stage, the
//! fs helper) install [`install_panic_hook`]: a panic there writes one line to stderr
//! that says it is a bug. The executor reads the fs helper's stderr through a
//! [`StderrWatch`] (passing it on to its own stderr), so when a helper dies the request
//! fails with that line, or with the helper's last words, rather than a pointer to a log
//! the client cannot see. For a sandboxed process the line is on the process's stderr.
//! This works the same whether the build unwinds (tests) or aborts (release) on panic.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::process::ChildStderr;
use tokio::sync::watch;

use crate::sync::lock;

/// What every crash report says.
pub const BUG: &str = "(this is a bug in executor)";

/// Longest line kept from a child's stderr; longer ones are cut (they are still passed on
/// whole).
const MAX_LINE: usize = 4096;

/// How long a dead helper's stderr is waited for: its last line was written before it
/// died, so this only matters when something else still holds the pipe.
const LAST_WORDS_WAIT: Duration = Duration::from_secs(2);

/// Makes a panic in this process print `"{role} crashed (this is a bug in executor):
/// {message} at {file}:{line}"` as one line on stderr, instead of Rust's default text.
pub fn install_panic_hook(role: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = format!("{}{at}", panic_text(info.payload()));
        // Nothing more can be done if stderr is gone.
        let _ = writeln!(std::io::stderr(), "{}", report(role, &message));
    }));
}

/// The one-line report of a crash of `role`.
pub fn report(role: &str, message: &str) -> String {
    format!("{role} crashed {BUG}: {}", message.replace('\n', " "))
}

/// The message a panic was raised with.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// What a child left on stderr before it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastWords {
    /// Its crash report (see [`install_panic_hook`]).
    Crash(String),
    /// Its last non-empty line.
    Line(String),
}

/// The message for a helper that failed with `failure`: its crash report when it
/// panicked, else `failure` with its last line of stderr.
pub fn explain(failure: &str, words: Option<LastWords>) -> String {
    match words {
        Some(LastWords::Crash(report)) => report,
        Some(LastWords::Line(line)) => format!("{failure}; its last words on stderr: {line}"),
        None => failure.to_owned(),
    }
}

#[derive(Default)]
struct Seen {
    crash: Option<String>,
    last: Option<String>,
}

/// Passes a child's stderr on to the executor's own and remembers its last words.
pub struct StderrWatch {
    seen: Arc<Mutex<Seen>>,
    ended: watch::Receiver<bool>,
}

impl StderrWatch {
    /// Starts reading `stderr` (a `None` pipe yields no last words).
    pub fn spawn(stderr: Option<ChildStderr>) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ended_tx, ended) = watch::channel(stderr.is_none());
        if let Some(stderr) = stderr {
            let seen = seen.clone();
            tokio::spawn(async move {
                pass_on(stderr, &seen).await;
                let _ = ended_tx.send(true);
            });
        }
        StderrWatch { seen, ended }
    }

    /// The crash report if the child wrote one, else its last line; waits a little for
    /// the stream to end first, so that a child that just died has said everything.
    pub async fn last_words(&self) -> Option<LastWords> {
        let mut ended = self.ended.clone();
        let _ = tokio::time::timeout(LAST_WORDS_WAIT, ended.wait_for(|ended| *ended)).await;
        let seen = lock(&self.seen);
        match (&seen.crash, &seen.last) {
            (Some(crash), _) => Some(LastWords::Crash(crash.clone())),
            (None, Some(line)) => Some(LastWords::Line(line.clone())),
            (None, None) => None,
        }
    }
}

async fn pass_on(mut stderr: ChildStderr, seen: &Mutex<Seen>) {
    let mut buf = vec![0u8; 8192];
    let mut line = Vec::new();
    while let Ok(n @ 1..) = stderr.read(&mut buf).await {
        let _ = std::io::stderr().write_all(&buf[..n]);
        for &byte in &buf[..n] {
            if byte == b'\n' {
                remember(seen, &line);
                line.clear();
            } else if line.len() < MAX_LINE {
                line.push(byte);
            }
        }
    }
    remember(seen, &line);
}

fn remember(seen: &Mutex<Seen>, line: &[u8]) {
    let text = String::from_utf8_lossy(line).trim().to_owned();
    if text.is_empty() {
        return;
    }
    let mut seen = lock(seen);
    if text.contains(BUG) {
        seen.crash.get_or_insert_with(|| text.clone());
    }
    seen.last = Some(text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    /// Set in the environment of the child that this test starts from its own binary.
    const CHILD: &str = "EXECUTOR_CRASH_TEST_CHILD";

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    /// Runs this test binary again, only `test`, with `CHILD` set; its last words.
    fn last_words_of(test: &str) -> Option<LastWords> {
        runtime().block_on(async {
            let exe = std::env::current_exe().expect("test binary");
            let mut child = tokio::process::Command::new(exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the child");
            let watch = StderrWatch::spawn(child.stderr.take());
            let status = child.wait().await.expect("wait");
            assert!(!status.success(), "the child was meant to fail");
            watch.last_words().await
        })
    }

    #[test]
    fn a_panic_under_the_hook_is_reported_as_a_bug() {
        if std::env::var_os(CHILD).is_some() {
            install_panic_hook("test child");
            panic!("deliberate\nfailure");
        }
        let words = last_words_of("crash::tests::a_panic_under_the_hook_is_reported_as_a_bug");
        let Some(LastWords::Crash(report)) = words else { panic!("no crash report: {words:?}") };
        assert!(
            report.starts_with("test child crashed (this is a bug in executor): deliberate failure at executor/src/crash.rs:"),
            "{report}"
        );
    }

    #[test]
    fn without_a_panic_the_last_line_is_kept() {
        if std::env::var_os(CHILD).is_some() {
            eprintln!("first line");
            eprintln!("the reason it stopped\n");
            std::process::exit(3);
        }
        let words = last_words_of("crash::tests::without_a_panic_the_last_line_is_kept");
        assert_eq!(words, Some(LastWords::Line("the reason it stopped".into())));
    }
}
