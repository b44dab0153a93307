#![no_std]
// Empty on purpose: the programs live in the `agent-observer` binary target. This library target
// exists so the daemon can build-depend on this crate and be rebuilt when it changes.
