//! Filesystem operations of the exec-server protocol (`fs/*`), usable directly by the
//! executor or inside the sandbox by the `executor-fs-helper` process.
