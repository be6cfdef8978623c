//! Params and results of every method, and the server notifications, as serde types.
//! Field names follow the wire (camelCase); unknown members are ignored, as the reference does.

use std::collections::HashMap;

use fs_helper::uri::PathUri;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Params of methods that take none: `null`, absent or `{}` are accepted.
#[derive(Debug, Deserialize)]
pub struct NoParams;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_name: String,
    #[serde(default)]
    pub resume_session_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    pub session_id: String,
    pub environment_info: EnvironmentInfo,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    pub shell: ShellInfo,
    pub executor_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_home_dir: Option<String>,
    pub platform_os: String,
    pub prepend_path_dirs: Vec<String>,
    pub temporary_directories: Vec<String>,
    pub temp_dir: String,
    pub capabilities: Capabilities,
    /// Executor-specific facts (implementation, enforced sandbox layers); clients ignore it.
    pub executor: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShellInfo {
    pub name: String,
    pub path: String,
}

/// Capability flags. Each is true only when this executor really implements the feature.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub network_proxy_launch: bool,
    pub network_proxy_review_domains: bool,
    pub credential_masking: bool,
    pub credential_masking_custom_providers: bool,
    pub capability_discovery_sandbox: bool,
    pub fs_watch_missing: bool,
    pub capability_discovery_v2: bool,
    pub environment_config_read: bool,
    pub http_header_env_vars: bool,
    pub sandboxed_file_streaming: bool,
    pub file_write_streaming: bool,
    pub shell_snapshot_v2: bool,
    pub windows_mxc: bool,
    pub linux_root_write_preserves_devices: bool,
    pub linux_approved_root_write_preserves_restrictions: bool,
}

#[derive(Debug, Serialize)]
pub struct StatusResult {
    pub status: &'static str,
}

/// `inherit` of an envPolicy. Declaration order matters: serde lists variants in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Inherit {
    Core,
    All,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvPolicy {
    pub inherit: Inherit,
    pub ignore_default_excludes: bool,
    pub exclude: Vec<String>,
    pub set: HashMap<String, String>,
    pub include_only: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStartParams {
    pub process_id: String,
    pub argv: Vec<String>,
    pub cwd: PathUri,
    pub env: HashMap<String, String>,
    pub tty: bool,
    #[serde(default)]
    pub pipe_stdin: bool,
    #[serde(default)]
    pub arg0: Option<String>,
    #[serde(default)]
    pub env_policy: Option<EnvPolicy>,
    #[serde(default)]
    pub sandbox: Option<super::sandbox_context::FileSystemSandboxContext>,
    #[serde(default)]
    pub enforce_managed_network: bool,
    #[serde(default)]
    pub managed_network: Option<Value>,
    #[serde(default)]
    pub network_proxy: Option<Value>,
    #[serde(default)]
    pub shell_snapshot: Option<Value>,
    /// Executor extension: limits for this process's tree, each capped by the operator's.
    #[serde(default)]
    pub executor_limits: Option<ExecutorLimits>,
}

/// `executorLimits` of `process/start` (an executor extension; the reference client does
/// not send it). An unknown member is refused: a misspelt limit must not silently be
/// no limit.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutorLimits {
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub max_procs: Option<u64>,
    #[serde(default)]
    pub cpu_percent: Option<u32>,
    #[serde(default)]
    pub wall_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SandboxType {
    None,
    LinuxSeccomp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStartResult {
    pub process_id: String,
    pub sandbox_type: SandboxType,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessReadParams {
    pub process_id: String,
    #[serde(default)]
    pub after_seq: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamName {
    Stdout,
    Stderr,
    Pty,
}

impl StreamName {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamName::Stdout => "stdout",
            StreamName::Stderr => "stderr",
            StreamName::Pty => "pty",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReadChunk {
    pub seq: u64,
    pub stream: StreamName,
    pub chunk: std::sync::Arc<str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessReadResult {
    pub chunks: Vec<ReadChunk>,
    pub next_seq: u64,
    pub exited: bool,
    pub exit_code: Option<i32>,
    pub closed: bool,
    pub failure: Option<String>,
    pub sandbox_denied: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessWriteParams {
    pub process_id: String,
    pub chunk: String,
    pub write_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteStatus {
    Accepted,
    UnknownProcess,
    StdinClosed,
    Starting,
}

#[derive(Debug, Serialize)]
pub struct ProcessWriteResult {
    pub status: WriteStatus,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignalName {
    Interrupt,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSignalParams {
    pub process_id: String,
    pub signal: SignalName,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessTerminateParams {
    pub process_id: String,
}

/// `sandbox/report` params (an executor method).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxReportParams {
    pub process_id: String,
}

/// What the sandbox refused for one process, as far as it was observed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxReportResult {
    pub process_id: String,
    pub sandboxed: bool,
    pub exited: bool,
    /// Limits the tree ran into, each with the line added to its stderr.
    pub limits: Vec<LimitHitReport>,
    /// System calls the seccomp filter refused (EPERM), most refused first.
    pub syscalls: Vec<RefusedSyscall>,
    /// Sockets refused for their family (network restricted).
    pub network: Vec<RefusedSocket>,
    /// What this report covers (e.g. `limits`); empty when nothing could be observed.
    pub observed: Vec<&'static str>,
    /// What it does not cover, and why: absent from `limits` is not "did not happen".
    pub not_observed: Vec<NotObserved>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitHitReport {
    /// memory, processes, cpu, wall
    pub limit: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedSyscall {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedSocket {
    /// `socket` or `socketpair`
    pub call: String,
    /// e.g. `AF_INET`
    pub family: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotObserved {
    pub what: &'static str,
    pub why: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ProcessTerminateResult {
    pub running: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitedNotification<'a> {
    pub process_id: &'a str,
    pub seq: u64,
    pub exit_code: i32,
    pub sandbox_denied: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedNotification<'a> {
    pub process_id: &'a str,
    pub seq: u64,
}

pub mod methods {
    pub const EXITED: &str = "process/exited";
    pub const CLOSED: &str = "process/closed";
    pub const MISSING_CHANGED: &str = "fs/missingChanged";
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBlockParams {
    pub handle_id: String,
    pub offset: u64,
    pub len: usize,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteBlockParams {
    pub handle_id: String,
    pub offset: u64,
    pub chunk: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseParams {
    pub handle_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchMissingParams {
    pub watch_id: u64,
    pub missing: Vec<PathUri>,
}

#[derive(Debug, Serialize)]
pub struct WatchMissingResult {
    pub watching: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingChangedNotification {
    pub watch_id: u64,
}
