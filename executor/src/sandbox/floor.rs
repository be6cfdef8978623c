//! The operator's floor: the sandbox a request gets when it carries none
//! (`--default-sandbox`), or its refusal (`--require-sandbox`). Applied by every service
//! that runs something for a client (process starts, sandboxed fs requests, watches).

use std::path::Path;

use super::policy::{self, FileSystemSandboxContext};

/// Built-in profiles an operator can impose with `--default-sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DefaultSandbox {
    /// Read everything, write nothing, no network.
    ReadOnly,
    /// Read everything, write the request's cwd and temp dirs, no network.
    WorkspaceWrite,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorFloor {
    /// The sandbox applied to requests that carry none.
    pub default_sandbox: Option<DefaultSandbox>,
    /// Refuse requests that carry no sandbox (and have no default).
    pub require_sandbox: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FloorError {
    #[error("this executor requires a sandbox: requests without `sandbox` are refused (--require-sandbox)")]
    SandboxRequired,
}

impl OperatorFloor {
    /// The client's sandbox, or the floor's for a request without one; `cwd` is what a
    /// workspace-write default makes writable.
    pub fn apply(&self, requested: Option<FileSystemSandboxContext>, cwd: &Path) -> Result<Option<FileSystemSandboxContext>, FloorError> {
        if requested.is_some() {
            return Ok(requested);
        }
        match self.default_sandbox {
            Some(profile) => {
                let workspace_write = profile == DefaultSandbox::WorkspaceWrite;
                Ok(Some(policy::builtin_context(workspace_write, cwd, &[], &[], false)))
            }
            None if self.require_sandbox => Err(FloorError::SandboxRequired),
            None => Ok(None),
        }
    }

    /// Whether some request may run without a sandbox (then unsandboxed-only features,
    /// such as `fs/watchMissing`, can be offered).
    pub fn allows_unsandboxed(&self) -> bool {
        !(self.require_sandbox && self.default_sandbox.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_sandbox_wins_and_the_floor_fills_in_otherwise() {
        let cwd = Path::new("/tmp");
        let open = OperatorFloor::default();
        assert!(matches!(open.apply(None, cwd), Ok(None)));
        let required = OperatorFloor { default_sandbox: None, require_sandbox: true };
        assert!(matches!(required.apply(None, cwd), Err(FloorError::SandboxRequired)));
        assert!(!required.allows_unsandboxed());
        let defaulted = OperatorFloor { default_sandbox: Some(DefaultSandbox::ReadOnly), require_sandbox: true };
        assert!(defaulted.apply(None, cwd).expect("default").is_some());
        assert!(defaulted.allows_unsandboxed());
        let client = policy::builtin_context(false, cwd, &[], &[], false);
        let kept = required.apply(Some(client.clone()), cwd).expect("client sandbox").expect("kept");
        assert_eq!(format!("{kept:?}"), format!("{client:?}"));
    }
}
