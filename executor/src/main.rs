//! The `executor` command: serves the protocol (default), and operator subcommands.

use std::ffi::OsString;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use executor::host_info::environment_info;
use executor::limits::SessionLimits;
use executor::protocol::types::Capabilities;
use executor::sandbox::floor::{DefaultSandbox, OperatorFloor};
use executor::sandbox::launcher::{LauncherArgs, LauncherConfig, LauncherError};
use executor::server::{Server, ServerConfig};
use executor::transport::auth::{AuthConfigError, AuthFlags, AuthMode, Authenticator};
use executor::transport::cli::{WsService, WsServiceArgs, WsServiceError};
use executor::transport::ws::{self, WsOptions};
use executor::transport::{self, Listen};

#[derive(Parser, Debug)]
#[command(
    name = "executor",
    about = "Hardened Linux exec-server (Codex exec-server protocol)",
    after_help = LOGGING_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

const LOGGING_HELP: &str = "\
Logging (always on stderr; stdout belongs to the protocol):
  EXECUTOR_LOG  log filter in tracing's EnvFilter syntax, e.g. `info` or `executor=debug,warn`
                [default: warn]; a filter that does not parse is reported and `warn` is used
  RUST_LOG      read when EXECUTOR_LOG is unset or empty";

#[derive(Subcommand, Debug)]
enum Command {
    /// Report what sandbox this host lets the executor enforce, with fixes.
    Doctor {
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
        /// Run the bundled bwrap `--version` from its verified descriptor (tests).
        #[arg(long, hide = true)]
        exec_bundled_bwrap_version: bool,
        #[command(flatten)]
        launcher: LauncherArgs,
    },
    /// Run one command in the sandbox, with this terminal's stdin, stdout and stderr.
    Sandbox(executor::sandbox::cli::SandboxArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the hash chain of an `--audit-log` file; exits 1 naming the first broken line.
    Verify {
        /// The audit log.
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Where to listen: `stdio` (or `stdio://`), `ws://IP:PORT`, or `wss://IP:PORT` with
    /// --tls-cert and --tls-key (port 0 picks a free port; the bound URL is printed as the
    /// only line on stdout).
    #[arg(long, value_name = "URL", default_value = "stdio")]
    listen: Listen,
    /// Requests of one connection processed at the same time.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrent_requests: u32,
    /// Sandbox applied to requests that carry none (operator floor).
    #[arg(long, value_enum, value_name = "PROFILE")]
    default_sandbox: Option<DefaultSandbox>,
    /// Refuse requests that carry no sandbox (unless --default-sandbox supplies one).
    #[arg(long)]
    require_sandbox: bool,
    #[command(flatten)]
    launcher: LauncherArgs,
    /// Authenticate websocket upgrades (`Authorization: Bearer <token>`).
    #[arg(long, value_enum, value_name = "MODE")]
    ws_auth: Option<AuthMode>,
    /// Absolute path of a file holding the capability token (trimmed, non-empty).
    #[arg(long, value_name = "ABS_PATH")]
    ws_token_file: Option<PathBuf>,
    /// SHA-256 of the capability token (trimmed), as 64 hex digits:
    /// `printf %s "$TOKEN" | sha256sum`.
    #[arg(long, value_name = "HEX64")]
    ws_token_sha256: Option<String>,
    #[command(flatten)]
    ws_service: WsServiceArgs,
    /// Seconds a detached session is kept for a resume before its processes are killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 80)]
    session_ttl: u64,
    /// On SIGTERM/SIGINT (websocket listener): how long children get after SIGTERM before
    /// their process groups are killed.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    shutdown_grace_ms: u64,
    /// Reap orphaned descendants through a supervising parent process (automatic when
    /// running as PID 1, e.g. as a container entrypoint).
    #[arg(long)]
    reap_orphans: bool,
    /// Open `fs/open` handles one session may hold.
    #[arg(long, value_name = "N", default_value_t = executor::limits::DEFAULT_MAX_FS_HANDLES as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_fs_handles: u32,
    /// Append one hash-chained JSON line per decision (connections, sessions, process
    /// starts and exits, fs writes and removes) to this file; `executor audit verify FILE`
    /// checks it.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Processes one session may run that have not closed yet.
    #[arg(long, value_name = "N", default_value_t = executor::limits::DEFAULT_MAX_PROCESSES as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_processes: u32,
    #[command(flatten)]
    http: executor::http::HttpArgs,
}

/// Exit status of a usage error (the convention of clap, cargo and ripgrep).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // Sandbox entry points come first: the inner stage must run before any runtime,
    // thread or logger exists, and the fs helper speaks its own protocol on stdio.
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(rest) = executor::sandbox::inner_args(&args) {
        executor::crash::install_panic_hook("executor-sandbox (the sandbox's inner stage)");
        executor::sandbox::inner::main(rest);
    }
    if args.get(1).is_some_and(|a| a == executor::fs::sandboxed::HELPER_ARG1) {
        executor::crash::install_panic_hook("fs sandbox helper");
        std::process::exit(executor::fs::sandboxed::helper_main(&args[2..]));
    }
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging();
    executor::crash::install_panic_hook("executor");
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Doctor { json, exec_bundled_bwrap_version, launcher }) => {
            if exec_bundled_bwrap_version {
                return executor::sandbox::doctor::exec_bundled_bwrap_version();
            }
            match launcher.config() {
                Ok(config) => executor::sandbox::doctor::run_with(json, &config),
                Err(e) => usage_error(&StartupError::Launcher(e)),
            }
        }
        Some(Command::Audit(AuditCommand::Verify { file })) => match executor::audit::verify(&file) {
            Ok(verified) => {
                println!("{}: {} lines, chain intact; head sha256:{}", file.display(), verified.lines, verified.head);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("executor: {}: {e}", file.display());
                ExitCode::from(1)
            }
        },
        Some(Command::Sandbox(args)) => match executor::sandbox::cli::run(args) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("executor: {e}");
                ExitCode::from(u8::try_from(e.exit_status()).unwrap_or(1))
            }
        },
    }
}

/// The command line, or the exit status after clap printed help, the version or a
/// usage error.
fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    // `--version` also names the protocol and the bundled bwrap; built once per process.
    let version: &'static str = version_text().leak();
    let command = Cli::command().version(version).long_version(version);
    command.try_get_matches_from(args).and_then(|m| Cli::from_arg_matches(&m)).map_err(|e| {
        if !e.use_stderr() {
            // --help and --version: clap prints them on stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        eprint!("{}", prefixed(&e.render().to_string()));
        ExitCode::from(EXIT_USAGE)
    })
}

/// clap's message with every line starting `executor: ` (its own `error: ` dropped).
fn prefixed(message: &str) -> String {
    let mut out = String::new();
    for line in message.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str("executor: ");
        out.push_str(line.strip_prefix("error: ").unwrap_or(line));
        out.push('\n');
    }
    out
}

fn version_text() -> String {
    let bwrap = if bwrap_vendor::BUNDLED {
        let digest = executor::sandbox::launcher::hex(&bwrap_vendor::BWRAP_SHA256);
        format!("bubblewrap {}, sha256:{digest}", bwrap_vendor::BWRAP_VERSION)
    } else {
        "none (development build without a bundled bwrap)".to_string()
    };
    format!("{}\nprotocol: {}\nbundled bwrap: {bwrap}", env!("CARGO_PKG_VERSION"), executor::protocol::PROTOCOL)
}

/// Environment variables that may hold the log filter, in the order they are read.
const LOG_FILTER_VARS: [&str; 2] = ["EXECUTOR_LOG", "RUST_LOG"];
const DEFAULT_LOG_FILTER: &str = "warn";

fn init_logging() {
    let (filter, problem) = log_filter();
    // stdout belongs to the protocol: logs go to stderr only, coloured only for a person.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
}

/// The filter of the first variable that is set and not empty, else the default; with
/// the reason when a set filter could not be used.
fn log_filter() -> (EnvFilter, Option<String>) {
    let set = LOG_FILTER_VARS.iter().find_map(|name| std::env::var_os(name).filter(|v| !v.is_empty()).map(|v| (name, v)));
    let Some((name, value)) = set else {
        return (EnvFilter::new(DEFAULT_LOG_FILTER), None);
    };
    let parsed =
        value.to_str().ok_or_else(|| "it is not UTF-8".to_string()).and_then(|text| EnvFilter::try_new(text).map_err(|e| e.to_string()));
    match parsed {
        Ok(filter) => (filter, None),
        Err(why) => (
            EnvFilter::new(DEFAULT_LOG_FILTER),
            Some(format!("{name}={value:?} is not a valid log filter ({why}); logging with `{DEFAULT_LOG_FILTER}`")),
        ),
    }
}

/// A command line the server cannot start with; reported with exit status 2.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error("{}", .0.with_fix())]
    Launcher(#[from] LauncherError),
    #[error(transparent)]
    WsService(#[from] WsServiceError),
    #[error(transparent)]
    Audit(#[from] executor::audit::AuditError),
}

fn usage_error(e: &StartupError) -> ExitCode {
    eprintln!("executor: {e}");
    ExitCode::from(EXIT_USAGE)
}

/// What the flags ask for, checked before anything starts: every mistake in them is
/// reported now, not at the first request.
fn check_flags(args: &ServeArgs) -> Result<(LauncherConfig, Option<Authenticator>, WsService), StartupError> {
    let launcher = args.launcher.config()?;
    let service = &args.ws_service;
    let auth_flags = AuthFlags {
        mode: args.ws_auth,
        token_file: args.ws_token_file.clone(),
        token_sha256: args.ws_token_sha256.clone(),
        shared_secret_file: service.ws_shared_secret_file.clone(),
        issuer: service.ws_issuer.clone(),
        audience: service.ws_audience.clone(),
        max_clock_skew_seconds: service.ws_max_clock_skew_seconds,
    };
    let auth = auth_flags.resolve(args.listen == Listen::Stdio)?;
    let wss = matches!(args.listen, Listen::Wss(_));
    let ws_service = service.resolve(args.listen == Listen::Stdio, wss, auth.is_some())?;
    executor::sandbox::launcher::check_explicit_path(&launcher)?;
    Ok((launcher, auth, ws_service))
}

/// What `--bwrap`/`--bwrap-path` chose, for the start-up line.
fn launcher_summary(config: &LauncherConfig) -> String {
    let mode = format!("{:?}", config.mode).to_lowercase();
    match &config.path_override {
        Some(path) => format!("bwrap {mode} {}", path.display()),
        None => format!("bwrap {mode}"),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let (launcher, auth, ws_service) = match check_flags(&args) {
        Ok(checked) => checked,
        Err(e) => return usage_error(&e),
    };
    let limits = executor::sandbox::cgroup::report(&launcher.tree_limits, launcher.limit_unsandboxed, false);
    tracing::info!(
        version = %env!("CARGO_PKG_VERSION"),
        transport = %args.listen,
        launcher = %launcher_summary(&launcher),
        limits = %format!("{}: {}", limits.mechanism, executor::sandbox::cgroup::summary(&limits.limits)),
        "executor starting"
    );
    if !limits.not_binding_tree.is_empty() {
        tracing::warn!(
            "sandbox limits that do not bind a whole process tree here: {} ({})",
            limits.not_binding_tree.join(", "),
            limits.problems.join("; ")
        );
    }
    // As many descriptors as the host allows, so that fs handles and the reserve kept for
    // process starts (limits.rs) fit; children get back the limit we were started with.
    if let Err(e) = executor::limits::raise_nofile_limit() {
        tracing::warn!("cannot raise the open-file limit (RLIMIT_NOFILE): {e}");
    }
    // Descriptors inherited from whoever started us (sshd, a CI runner) must not reach
    // the commands we run.
    if let Err(e) = executor::fds::mark_cloexec_from(3, &[]) {
        eprintln!("executor: cannot mark inherited descriptors close-on-exec: {e}");
        return ExitCode::from(1);
    }
    // Before any thread exists: as PID 1 the process splits into a reaping supervisor and
    // the server (reaper.rs explains why).
    if let Err(e) = executor::reaper::supervise(args.reap_orphans) {
        eprintln!("executor: {e}");
        return ExitCode::from(1);
    }
    // After the PID 1 split (the writer thread belongs to the server process).
    if let Some(path) = &args.audit_log {
        if let Err(e) = executor::audit::open(path) {
            return usage_error(&StartupError::Audit(e));
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("executor: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let config = ServerConfig {
        concurrent_requests: args.concurrent_requests as usize,
        launcher,
        floor: OperatorFloor { default_sandbox: args.default_sandbox, require_sandbox: args.require_sandbox },
        session_ttl: Duration::from_secs(args.session_ttl),
        limits: SessionLimits { max_fs_handles: args.max_fs_handles as usize, max_processes: args.max_processes as usize },
        http: args.http.config(),
    };
    match args.listen {
        Listen::Stdio => runtime.block_on(serve_stdio(config)),
        Listen::Ws(addr) | Listen::Wss(addr) => {
            let grace = Duration::from_millis(args.shutdown_grace_ms);
            runtime.block_on(serve_ws(config, addr, ws_service.into_options(auth), grace))
        }
    }
}

fn new_server(config: ServerConfig) -> Arc<Server> {
    // fs/watchMissing runs with the executor's own rights, which --require-sandbox (without
    // a default) refuses: then the client is told not to send it.
    let fs_watch_missing = config.floor.allows_unsandboxed();
    let capabilities = Capabilities {
        file_write_streaming: true,
        sandboxed_file_streaming: true,
        fs_watch_missing,
        // http/request fills `valueEnvVar` headers from the executor's environment.
        http_header_env_vars: true,
        ..Capabilities::default()
    };
    let info = environment_info(capabilities, sandbox_facts(&config));
    Server::new(config, info)
}

/// The websocket server: many connections; stdin is not read. On SIGTERM/SIGINT/SIGHUP it
/// stops accepting, gives every child `grace` after SIGTERM, kills what is left and exits;
/// with TLS, SIGHUP reloads the certificate files instead.
async fn serve_ws(config: ServerConfig, addr: SocketAddr, options: WsOptions, grace: Duration) -> ExitCode {
    let mut terminations = Terminations::watch();
    let server = new_server(config);
    let tls = options.tls.clone();
    let (listener, url) = match ws::bind(addr, tls.is_some()).await {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("executor: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(tls) = tls.clone() {
        tokio::spawn(executor::transport::tls::reload_on_sighup(tls));
    }
    // The only line this server ever writes to stdout.
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{url}").and_then(|()| stdout.flush()).is_err() {
        tracing::warn!("cannot print the bound URL on stdout");
    }
    drop(stdout);
    let stop = Arc::new(tokio::sync::Notify::new());
    let accepting = tokio::spawn(ws::serve(listener, server.clone(), options, stop.clone()));
    let signal = terminations.next(tls.is_none()).await;
    tracing::info!(signal, "shutting down: no new connections; terminating children");
    stop.notify_one();
    let _ = accepting.await;
    server.shutdown(grace).await;
    executor::audit::flush(AUDIT_FLUSH_AT_EXIT);
    ExitCode::from((128 + signal) as u8)
}

async fn serve_stdio(config: ServerConfig) -> ExitCode {
    let mut terminations = Terminations::watch();
    let server = new_server(config);
    let stdio = match transport::stdio::start() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("executor: cannot start the stdio transport: {e}");
            return ExitCode::from(1);
        }
    };
    let code = tokio::select! {
        _ = executor::connection::serve_stdio(&server, stdio.inbound, stdio.outbound) => 0,
        signal = terminations.next(true) => 128 + signal,
    };
    // stdio has one connection: when it ends, every child of every session goes with it.
    for session in server.sessions.all() {
        server.sessions.remove(&session.id);
    }
    // What was answered before the end (an `initialize` right before EOF, say) is still
    // in the writer's queue: let it reach stdout. The writer is done once every sender
    // is gone; a request still running gets this long, not an unbounded wait.
    let _ = tokio::time::timeout(FLUSH_AT_EXIT, stdio.writer_done).await;
    executor::audit::flush(AUDIT_FLUSH_AT_EXIT);
    ExitCode::from(code as u8)
}

/// Longest the server waits at exit for queued audit lines to reach the disk.
const AUDIT_FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// Longest the stdio server waits at exit for queued answers to be written.
const FLUSH_AT_EXIT: Duration = Duration::from_millis(500);

/// Cheap, truthful facts about the sandbox for `environment/info` (the full, slower
/// check with a test run is `executor doctor`).
fn sandbox_facts(config: &ServerConfig) -> serde_json::Value {
    let mut layers = vec!["bwrap namespaces and mounts", "capabilities dropped", "no_new_privs", "landlock", "seccomp"];
    let guard_kernel = executor::sandbox::inner::guard::kernel_supported();
    if guard_kernel {
        layers.push("create guard (missing protected names)");
    }
    serde_json::json!({
        "sandbox": {
            "layers": layers,
            "createGuard": {
                "kernelSupported": guard_kernel,
                "needs": "Linux 5.14 and a /proc of the sandbox's own (executor doctor checks both)",
            },
            "landlockAbi": executor::sandbox::doctor::landlock_abi(),
            "bwrap": format!("{:?}", config.launcher.mode).to_lowercase(),
            "bwrapPath": config.launcher.path_override,
            "bundledBwrap": {
                "version": bwrap_vendor::BWRAP_VERSION,
                "developmentBuild": bwrap_vendor::is_dev_build(),
            },
            "defaultSandbox": config.floor.default_sandbox.map(|d| format!("{d:?}")),
            "requireSandbox": config.floor.require_sandbox,
            "diagnose": "executor doctor",
            "limits": executor::sandbox::cgroup::report(&config.launcher.tree_limits, config.launcher.limit_unsandboxed, false),
        }
    })
}

/// The termination signals, watched from before the server says it is ready: a signal
/// sent right after the bound URL appears must end the server the same way as later.
struct Terminations {
    watched: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Terminations {
    fn watch() -> Terminations {
        use tokio::signal::unix::{signal, SignalKind};
        let watched = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) {
            (Ok(term), Ok(int), Ok(hup)) => Some((term, int, hup)),
            _ => {
                tracing::warn!("cannot watch termination signals; only stdin EOF stops the server");
                None
            }
        };
        Terminations { watched }
    }

    /// Waits for SIGTERM, SIGINT or (when `hangup_terminates`) SIGHUP and returns its number.
    async fn next(&mut self, hangup_terminates: bool) -> i32 {
        let Some((term, int, hup)) = &mut self.watched else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => libc::SIGTERM,
            _ = int.recv() => libc::SIGINT,
            _ = hup.recv(), if hangup_terminates => libc::SIGHUP,
        }
    }
}
