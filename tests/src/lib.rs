//! Test harness: spawns the executor binary and speaks the protocol to it.
