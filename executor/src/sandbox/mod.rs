//! Sandbox layer. (Launcher branch: only the modules it owns are listed here; the
//! policy/argv/inner-stage modules come from the sandbox branch.)

pub mod doctor;
pub mod host_errors;
pub mod launcher;
