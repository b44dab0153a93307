//! The ABI between agent-observer's kernel programs and its daemon.
//!
//! Everything here is `#[repr(C)]` plain data. The kernel writes records into one ring buffer;
//! every record starts with a [`Header`] whose `kind` says which record type follows. Variable
//! parts (paths, argv, payload bytes) follow the fixed part and their lengths are in the fixed
//! part. The daemon never trusts those lengths: it checks them against the record size.
//!
//! Paths are sent the way the kernel finds them: walking dentries from the leaf to the root, so
//! the bytes are the components leaf-first, each ending in a NUL. The daemon reverses them.
#![no_std]

pub mod config;
pub mod record;

pub use config::*;
pub use record::*;
