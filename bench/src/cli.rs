//! Command-line parsing (by hand: the tool has few flags and no other dependency).

use std::path::PathBuf;
use std::time::Duration;

use crate::client::ServerCommand;
use crate::error::{Error, Result};
use crate::fail;

pub const USAGE: &str = "\
exec-bench: benchmark any stdio exec-server command

USAGE:
  exec-bench [OPTIONS] -- SERVER-COMMAND...
  exec-bench compare BASELINE.json CANDIDATE.json [MORE.json...] [--json | --markdown]
      side-by-side table; × columns = how many times better than BASELINE;
      budgets (DESIGN.md §6) are checked against CANDIDATE

OPTIONS:
  --label NAME          name for this server in reports (default: the program name)
  --only LIST           workloads, comma separated (default: init,true,stream,rss)
                        init        spawn → initialize response latency (fresh server each run)
                        true        process/start [\"true\"] → process/closed latency
                        stream      stdout streaming throughput through process/output
                        rss         idle RSS after initialize
                        bare-bwrap  bwrap ... -- true spawned directly (needs no server)
                        sandbox-true  process/start [\"true\"] in a workspace-write sandbox
                                    (network restricted) → process/closed, alternating with
                                    bare bwrap with the same mounts (bare-bwrap-ws); ratio
                        sandbox-roots  sandboxed `true` with 1, 10, 50 and 100 writable roots
                                    (interleaved; --sandbox-runs / 4 runs each, at least 5)
                        fs-read     fs/readFile of a 64 MiB file, direct and sandboxed, MiB/s
                        fs-meta     fs/getMetadata latency, sandboxed (warm helper) and direct
                        http        http/request from a loopback origin: a streamed body of
                                    --stream-mib MiB (MiB/s, peak RSS growth) and small GETs
                                    on a reused connection (latency)
  --init-runs N         measured init runs (default 20, plus 2 warm-up)
  --true-runs N         measured `true` runs (default 200, plus 5 warm-up)
  --stream-mib N        MiB written per streaming run (default 256)
  --stream-runs N       streaming runs (default 3)
  --idle-ms N           wait after initialize before reading idle RSS (default 300)
  --bwrap-runs N        bare bwrap runs (default 50, plus 3 warm-up)
  --bwrap PATH          bwrap binary for bare-bwrap and bare-bwrap-ws (default /usr/bin/bwrap)
  --sandbox-runs N      measured sandbox-true runs, each with one bare-bwrap-ws run
                        (default 100, plus 5 warm-up)
  --read-mib N          size of the fs-read file (default 64)
  --read-runs N         fs-read runs per mode (default 3; the median is reported)
  --meta-runs N         measured fs-meta calls per mode (default 200, plus 5 warm-up)
  --timeout-s N         deadline per workload; the server is killed after it (default 120)
  --json                print the report as JSON instead of a table
  --json-out FILE       also write the JSON report to FILE
  --server-stderr       pass the server's stderr through (default: keep its tail for errors)
  -h, --help            this text
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Init,
    True,
    Stream,
    Rss,
    BareBwrap,
    SandboxTrue,
    SandboxRoots,
    FsRead,
    FsMeta,
    Http,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Self::Init,
        Self::True,
        Self::Stream,
        Self::Rss,
        Self::BareBwrap,
        Self::SandboxTrue,
        Self::SandboxRoots,
        Self::FsRead,
        Self::FsMeta,
        Self::Http,
    ];
    pub const DEFAULT: [Workload; 4] = [Self::Init, Self::True, Self::Stream, Self::Rss];

    /// Name on the command line and key in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::True => "true",
            Self::Stream => "stream",
            Self::Rss => "rss",
            Self::BareBwrap => "bare-bwrap",
            Self::SandboxTrue => "sandbox-true",
            Self::SandboxRoots => "sandbox-roots",
            Self::FsRead => "fs-read",
            Self::FsMeta => "fs-meta",
            Self::Http => "http",
        }
    }

    pub fn needs_server(self) -> bool {
        self != Self::BareBwrap
    }

    fn parse(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name).ok_or_else(|| {
            let known: Vec<_> = Self::ALL.iter().map(|w| w.name()).collect();
            Error(format!("unknown workload `{name}` (known: {})", known.join(", ")))
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub label: String,
    pub server: ServerCommand,
    pub only: Vec<Workload>,
    pub init_runs: usize,
    pub init_warmup: usize,
    pub true_runs: usize,
    pub true_warmup: usize,
    pub stream_bytes: u64,
    pub stream_runs: usize,
    pub idle: Duration,
    pub bwrap_runs: usize,
    pub bwrap_warmup: usize,
    pub bwrap: PathBuf,
    pub sandbox_runs: usize,
    pub sandbox_warmup: usize,
    pub read_bytes: u64,
    pub read_runs: usize,
    pub meta_runs: usize,
    pub meta_warmup: usize,
    pub timeout: Duration,
    pub json: bool,
    pub json_out: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            label: String::new(),
            server: ServerCommand { argv: Vec::new(), inherit_stderr: false },
            only: Workload::DEFAULT.to_vec(),
            init_runs: 20,
            init_warmup: 2,
            true_runs: 200,
            true_warmup: 5,
            stream_bytes: 256 << 20,
            stream_runs: 3,
            idle: Duration::from_millis(300),
            bwrap_runs: 50,
            bwrap_warmup: 3,
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            sandbox_runs: 100,
            sandbox_warmup: 5,
            read_bytes: 64 << 20,
            read_runs: 3,
            meta_runs: 200,
            meta_warmup: 5,
            timeout: Duration::from_secs(120),
            json: false,
            json_out: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    Bench(Box<Config>),
    Compare { files: Vec<PathBuf>, json: bool, markdown: bool },
}

pub fn parse(args: &[String]) -> Result<Command> {
    match args.first().map(String::as_str) {
        Some("compare") => parse_compare(&args[1..]),
        _ => parse_bench(args),
    }
}

fn parse_compare(args: &[String]) -> Result<Command> {
    let flag = |name: &str| args.iter().any(|a| a == name);
    let (json, markdown) = (flag("--json"), flag("--markdown"));
    if let Some(other) = args.iter().find(|a| a.starts_with("--") && *a != "--json" && *a != "--markdown") {
        fail!("unknown compare option `{other}`")
    }
    let files: Vec<PathBuf> = args.iter().filter(|a| !a.starts_with("--")).map(PathBuf::from).collect();
    if files.is_empty() {
        fail!("compare needs at least one report file")
    }
    Ok(Command::Compare { files, json, markdown })
}

fn parse_bench(args: &[String]) -> Result<Command> {
    let mut cfg = Config::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| Error(format!("{arg} needs a value")));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--" => {
                cfg.server.argv = it.by_ref().cloned().collect();
                break;
            }
            "--label" => cfg.label = value()?,
            "--only" => cfg.only = parse_only(&value()?)?,
            "--init-runs" => cfg.init_runs = number(arg, &value()?)?,
            "--true-runs" => cfg.true_runs = number(arg, &value()?)?,
            "--stream-mib" => cfg.stream_bytes = number::<u64>(arg, &value()?)? << 20,
            "--stream-runs" => cfg.stream_runs = number(arg, &value()?)?,
            "--idle-ms" => cfg.idle = Duration::from_millis(number(arg, &value()?)?),
            "--bwrap-runs" => cfg.bwrap_runs = number(arg, &value()?)?,
            "--bwrap" => cfg.bwrap = PathBuf::from(value()?),
            "--sandbox-runs" => cfg.sandbox_runs = number(arg, &value()?)?,
            "--read-mib" => cfg.read_bytes = number::<u64>(arg, &value()?)? << 20,
            "--read-runs" => cfg.read_runs = number(arg, &value()?)?,
            "--meta-runs" => cfg.meta_runs = number(arg, &value()?)?,
            "--timeout-s" => cfg.timeout = Duration::from_secs(number(arg, &value()?)?),
            "--json" => cfg.json = true,
            "--json-out" => cfg.json_out = Some(PathBuf::from(value()?)),
            "--server-stderr" => cfg.server.inherit_stderr = true,
            other => fail!("unknown option `{other}` (see --help)"),
        }
    }
    check(&mut cfg)?;
    Ok(Command::Bench(Box::new(cfg)))
}

fn check(cfg: &mut Config) -> Result<()> {
    let needs_server = cfg.only.iter().any(|w| w.needs_server());
    if needs_server && cfg.server.argv.is_empty() {
        fail!("give the server command after `--` (e.g. -- ./target/x86_64-unknown-linux-gnu/release/executor --listen stdio)")
    }
    if cfg.label.is_empty() {
        cfg.label = match cfg.server.argv.first() {
            Some(program) => program.rsplit('/').next().unwrap_or(program).to_string(),
            None => "no-server".to_string(),
        };
    }
    let counts = [cfg.init_runs, cfg.true_runs, cfg.stream_runs, cfg.bwrap_runs, cfg.sandbox_runs, cfg.read_runs, cfg.meta_runs];
    if counts.contains(&0) || cfg.stream_bytes == 0 || cfg.read_bytes == 0 {
        fail!("run counts, --stream-mib and --read-mib must be at least 1")
    }
    Ok(())
}

fn parse_only(list: &str) -> Result<Vec<Workload>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let w = Workload::parse(name)?;
        if !out.contains(&w) {
            out.push(w);
        }
    }
    if out.is_empty() {
        fail!("--only needs at least one workload")
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T> {
    text.parse().map_err(|_| Error(format!("{flag} expects a number, got `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn server_command_follows_the_separator() {
        let Ok(Command::Bench(cfg)) = parse(&args("--only true,init --true-runs 7 -- ./x --listen stdio")) else {
            panic!("bench config expected")
        };
        assert_eq!(cfg.server.argv, args("./x --listen stdio"));
        assert_eq!(cfg.only, vec![Workload::True, Workload::Init]);
        assert_eq!(cfg.true_runs, 7);
        assert_eq!(cfg.label, "x");
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(parse(&args("--only nope -- x")).is_err());
        assert!(parse(&args("--true-runs many -- x")).is_err());
        assert!(parse(&args("--true-runs 0 -- x")).is_err());
        assert!(parse(&args("--only init")).is_err());
        assert!(parse(&args("--label")).is_err());
    }

    #[test]
    fn bare_bwrap_needs_no_server() {
        let Ok(Command::Bench(cfg)) = parse(&args("--only bare-bwrap")) else { panic!("bench config expected") };
        assert_eq!(cfg.label, "no-server");
    }

    #[test]
    fn sandboxed_workloads_and_their_counts() {
        let Ok(Command::Bench(cfg)) = parse(&args("--only sandbox-true,fs-read,fs-meta --sandbox-runs 9 --read-mib 2 --meta-runs 7 -- x"))
        else {
            panic!("bench config expected")
        };
        assert_eq!(cfg.only, vec![Workload::SandboxTrue, Workload::FsRead, Workload::FsMeta]);
        assert_eq!((cfg.sandbox_runs, cfg.read_bytes, cfg.meta_runs), (9, 2 << 20, 7));
        assert!(parse(&args("--only fs-read -- ")).is_err());
        assert!(parse(&args("--read-mib 0 -- x")).is_err());
    }

    #[test]
    fn compare_takes_files() {
        let Ok(Command::Compare { files, json, markdown }) = parse(&args("compare a.json b.json --json")) else {
            panic!("compare expected")
        };
        assert_eq!((files.len(), json, markdown), (2, true, false));
        assert!(parse(&args("compare a.json --nope")).is_err());
    }
}
