//! One module per workload. Each takes the configuration and returns its result as
//! a JSON object (the report and `compare` read figures from there).
//!
//! Adding a workload: write a module with `pub fn run(cfg: &Config) -> Result<Value>`,
//! add a `Workload` variant in `cli.rs`, dispatch it below, and give it rows in
//! `report.rs` / `compare.rs`.

mod bare_bwrap;
mod fs_meta;
mod fs_read;
mod http;
mod idle_rss;
mod init;
mod sandbox;
mod sandbox_roots;
mod sandbox_true;
mod spawn_true;
mod stream;

use std::time::Duration;

use serde_json::Value;

use crate::cli::{Config, Workload};
use crate::client::Server;
use crate::error::Result;

pub fn run(workload: Workload, cfg: &Config) -> Result<Value> {
    match workload {
        Workload::Init => init::run(cfg),
        Workload::True => spawn_true::run(cfg),
        Workload::Stream => stream::run(cfg),
        Workload::Rss => idle_rss::run(cfg),
        Workload::BareBwrap => bare_bwrap::run(cfg),
        Workload::SandboxTrue => sandbox_true::run(cfg),
        Workload::SandboxRoots => sandbox_roots::run(cfg),
        Workload::FsRead => fs_read::run(cfg),
        Workload::FsMeta => fs_meta::run(cfg),
        Workload::Http => http::run(cfg),
    }
}

/// A fresh server past `initialize`/`initialized`, with the workload deadline set.
fn ready_server(cfg: &Config, deadline: Duration) -> Result<Server> {
    let mut server = Server::spawn(&cfg.server)?;
    server.set_deadline(deadline);
    server.handshake()?;
    Ok(server)
}
