//! The `executor` command: serves the protocol (default), and operator subcommands.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use executor::environment::environment_info;
use executor::protocol::types::Capabilities;
use executor::server::{DefaultSandbox, Server, ServerConfig};
use executor::transport;

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
    /// Where to listen: `stdio` (or `stdio://`).
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
}

fn main() -> ExitCode {
    // Sandbox entry points come first: the inner stage must run before any runtime,
    // thread or logger exists, and `sandbox -- CMD` takes its own argv.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(rest) = executor::sandbox::inner_args(&args) {
        executor::sandbox::inner::main(rest);
    }
    if args.get(1).is_some_and(|a| a == executor::fs::sandboxed::HELPER_ARG1) {
        std::process::exit(executor::fs::sandboxed::helper_main());
    }
    if args.get(1).is_some_and(|a| a == "sandbox") {
        std::process::exit(executor::sandbox::cli::main(args[2..].to_vec()));
    }
    init_logging();
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
    if args.listen != "stdio" && args.listen != "stdio://" {
        eprintln!("unsupported --listen URL `{}`; expected `ws://IP:PORT` or `stdio`", args.listen);
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
    };
    runtime.block_on(serve_stdio(config))
}

async fn serve_stdio(config: ServerConfig) -> ExitCode {
    let capabilities = Capabilities { file_write_streaming: true, ..Capabilities::default() };
    let info = environment_info(capabilities, sandbox_facts(&config));
    let server = Server::new(config, info);
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
    ExitCode::from(code as u8)
}

/// Cheap, truthful facts about the sandbox for `environment/info` (the full, slower
/// check with a test run is `executor doctor`).
fn sandbox_facts(config: &ServerConfig) -> serde_json::Value {
    serde_json::json!({
        "sandbox": {
            "layers": ["bwrap namespaces and mounts", "capabilities dropped", "no_new_privs", "landlock", "seccomp"],
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
