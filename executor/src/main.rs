//! The `executor` command: serves the protocol (default), and operator subcommands.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use executor::environment::environment_info;
use executor::limits::SessionLimits;
use executor::protocol::types::Capabilities;
use executor::server::{DefaultSandbox, Server, ServerConfig};
use executor::transport;
use executor::transport::auth::AuthFlags;
use executor::transport::ws::{self, WsOptions};

#[derive(Parser, Debug)]
#[command(name = "executor", version, about = "Hardened Linux exec-server (Codex exec-server protocol)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

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
        launcher: executor::sandbox::launcher::LauncherArgs,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Where to listen: `stdio` (or `stdio://`), or `ws://IP:PORT` (port 0 picks a free
    /// port; the bound URL is printed as the only line on stdout).
    #[arg(long, default_value = "stdio")]
    listen: String,
    /// Requests of one connection processed at the same time.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrent_requests: u32,
    /// Sandbox applied to requests that carry none (operator floor).
    #[arg(long, value_enum, value_name = "PROFILE")]
    default_sandbox: Option<DefaultSandbox>,
    /// Refuse requests that carry no sandbox (unless --default-sandbox supplies one).
    #[arg(long)]
    require_sandbox: bool,
    #[command(flatten)]
    launcher: executor::sandbox::launcher::LauncherArgs,
    /// Authenticate websocket upgrades (`Authorization: Bearer <token>`).
    #[arg(long, value_enum)]
    ws_auth: Option<WsAuth>,
    /// Absolute path of a file holding the capability token (trimmed, non-empty).
    #[arg(long, value_name = "ABS_PATH")]
    ws_token_file: Option<PathBuf>,
    /// SHA-256 of the capability token, as 64 hex digits.
    #[arg(long, value_name = "HEX64")]
    ws_token_sha256: Option<String>,
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
    /// Processes one session may run that have not closed yet.
    #[arg(long, value_name = "N", default_value_t = executor::limits::DEFAULT_MAX_PROCESSES as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_processes: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WsAuth {
    /// A shared secret token; the server keeps only its SHA-256.
    CapabilityToken,
}

fn main() -> ExitCode {
    // Sandbox entry points come first: the inner stage must run before any runtime,
    // thread or logger exists, and `sandbox -- CMD` takes its own argv.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(rest) = executor::sandbox::inner_args(&args) {
        executor::crash::install_panic_hook("executor-sandbox (the sandbox's inner stage)");
        executor::sandbox::inner::main(rest);
    }
    if args.get(1).is_some_and(|a| a == executor::fs::sandboxed::HELPER_ARG1) {
        executor::crash::install_panic_hook("fs sandbox helper");
        std::process::exit(executor::fs::sandboxed::helper_main(&args[2..]));
    }
    if args.get(1).is_some_and(|a| a == "sandbox") {
        std::process::exit(executor::sandbox::cli::main(args[2..].to_vec()));
    }
    init_logging();
    executor::crash::install_panic_hook("executor");
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Doctor { json, exec_bundled_bwrap_version, launcher }) => {
            if exec_bundled_bwrap_version {
                executor::sandbox::doctor::exec_bundled_bwrap_version()
            } else {
                executor::sandbox::doctor::run_with(json, &launcher.config())
            }
        }
    }
}

fn init_logging() {
    // stdout belongs to the protocol: logs go to stderr only.
    let filter = EnvFilter::try_from_env("EXECUTOR_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn serve(args: ServeArgs) -> ExitCode {
    // As many descriptors as the host allows, so that fs handles and the reserve kept for
    // process starts (limits.rs) fit; children get back the limit we were started with.
    if let Err(e) = executor::limits::raise_nofile_limit() {
        tracing::warn!("cannot raise the open-file limit (RLIMIT_NOFILE): {e}");
    }
    // Descriptors inherited from whoever started us (sshd, a CI runner) must not reach
    // the commands we run.
    if let Err(e) = executor::fds::mark_cloexec_from(3, &[]) {
        eprintln!("cannot mark inherited descriptors close-on-exec: {e}");
        return ExitCode::from(1);
    }
    let ws_addr = if args.listen == "stdio" || args.listen == "stdio://" {
        None
    } else {
        match ws::parse_listen_url(&args.listen) {
            Ok(addr) => Some(addr),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        }
    };
    let auth_flags = AuthFlags {
        capability_token: args.ws_auth.is_some(),
        token_file: args.ws_token_file.clone(),
        token_sha256: args.ws_token_sha256.clone(),
    };
    let auth = match auth_flags.resolve(ws_addr.is_none()) {
        Ok(auth) => auth,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    // Before any thread exists: as PID 1 the process splits into a reaping supervisor and
    // the server (init.rs explains why).
    if let Err(e) = executor::init::supervise(args.reap_orphans) {
        eprintln!("executor: {e}");
        return ExitCode::from(1);
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
        launcher: args.launcher.config(),
        default_sandbox: args.default_sandbox,
        require_sandbox: args.require_sandbox,
        session_ttl: Duration::from_secs(args.session_ttl),
        limits: SessionLimits { max_fs_handles: args.max_fs_handles as usize, max_processes: args.max_processes as usize },
    };
    match ws_addr {
        None => runtime.block_on(serve_stdio(config)),
        Some(addr) => {
            let grace = Duration::from_millis(args.shutdown_grace_ms);
            runtime.block_on(serve_ws(config, addr, WsOptions { auth }, grace))
        }
    }
}

fn new_server(config: ServerConfig) -> Arc<Server> {
    // fs/watchMissing runs with the executor's own rights, which --require-sandbox (without
    // a default) refuses: then the client is told not to send it.
    let fs_watch_missing = !(config.require_sandbox && config.default_sandbox.is_none());
    let capabilities = Capabilities {
        file_write_streaming: true,
        sandboxed_file_streaming: true,
        fs_watch_missing,
        ..Capabilities::default()
    };
    let info = environment_info(capabilities, sandbox_facts(&config));
    Server::new(config, info)
}

/// The websocket server: many connections; stdin is not read. On SIGTERM/SIGINT/SIGHUP it
/// stops accepting, gives every child `grace` after SIGTERM, kills what is left and exits.
async fn serve_ws(config: ServerConfig, addr: SocketAddr, options: WsOptions, grace: Duration) -> ExitCode {
    let server = new_server(config);
    let (listener, url) = match ws::bind(addr).await {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("executor: cannot listen on ws://{addr}: {e}");
            return ExitCode::from(1);
        }
    };
    // The only line this server ever writes to stdout.
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{url}").and_then(|()| stdout.flush()).is_err() {
        tracing::warn!("cannot print the bound URL on stdout");
    }
    drop(stdout);
    let stop = Arc::new(tokio::sync::Notify::new());
    let accepting = tokio::spawn(ws::serve(listener, server.clone(), options, stop.clone()));
    let signal = termination_signal().await;
    tracing::info!(signal, "shutting down: no new connections; terminating children");
    stop.notify_one();
    let _ = accepting.await;
    server.shutdown(grace).await;
    ExitCode::from((128 + signal) as u8)
}

async fn serve_stdio(config: ServerConfig) -> ExitCode {
    let server = new_server(config);
    let stdio = match transport::stdio::start() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("executor: cannot start the stdio transport: {e}");
            return ExitCode::from(1);
        }
    };
    let code = tokio::select! {
        _ = server.serve_connection(stdio.inbound, stdio.outbound) => 0,
        signal = termination_signal() => 128 + signal,
    };
    // stdio has one connection: when it ends, every child of every session goes with it.
    for session in server.sessions.all() {
        server.sessions.remove(&session.id);
    }
    // What was answered before the end (an `initialize` right before EOF, say) is still
    // in the writer's queue: let it reach stdout. The writer is done once every sender
    // is gone; a request still running gets this long, not an unbounded wait.
    let _ = tokio::time::timeout(FLUSH_AT_EXIT, stdio.writer_done).await;
    ExitCode::from(code as u8)
}

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
            "defaultSandbox": config.default_sandbox.map(|d| format!("{d:?}")),
            "requireSandbox": config.require_sandbox,
            "diagnose": "executor doctor",
        }
    })
}

/// Waits for SIGTERM, SIGINT or SIGHUP and returns its number.
async fn termination_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::warn!("cannot watch termination signals; only stdin EOF stops the server");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => libc::SIGTERM,
        _ = int.recv() => libc::SIGINT,
        _ = hup.recv() => libc::SIGHUP,
    }
}
