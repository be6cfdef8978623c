//! exec-bench: drives any stdio exec-server command and measures it.
//! See `docs/benchmarks.md` and `exec-bench --help`.

mod cli;
mod client;
mod compare;
mod error;
mod memory;
mod metrics;
mod output;
mod process;
mod procfs;
mod report;
mod stats;
mod table;
mod watchdog;
mod workloads;

use std::process::ExitCode;

use cli::{Command, Config};
use error::{Error, Result};
use report::Report;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args).and_then(run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("exec-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare { files, json, markdown } => {
            let reports = compare::load(&files)?;
            if json {
                println!("{}", compare::to_json(&reports));
            } else {
                print!("{}", compare::render(&reports, markdown));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(cfg) => bench(&cfg),
    }
}

fn bench(cfg: &Config) -> Result<ExitCode> {
    let mut report = Report::new(cfg);
    for &workload in &cfg.only {
        eprintln!("exec-bench [{}]: {} ...", cfg.label, workload.name());
        let outcome = workloads::run(workload, cfg);
        if let Err(e) = &outcome {
            eprintln!("exec-bench [{}]: {} failed: {e}", cfg.label, workload.name());
        }
        report.add(workload.name(), outcome);
    }
    let text = serde_json::to_string_pretty(report.json()).map_err(|e| Error(e.to_string()))?;
    if let Some(path) = &cfg.json_out {
        std::fs::write(path, format!("{text}\n")).map_err(|e| Error(format!("cannot write {}: {e}", path.display())))?;
    }
    if cfg.json {
        println!("{text}");
    } else {
        print!("{}", report::render(report.json()));
    }
    Ok(if report.has_errors() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
