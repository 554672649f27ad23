//! Shared support for the workspace-level tests: the layering rule, and fixtures for in-process cluster nodes
//! (ephemeral ports, short timers, a shared test cookie), and a pausable TCP proxy for fault injection. Helpers
//! to drive the app binaries join them as the tests need them.

pub mod cluster;
pub mod layering;
pub mod proxy;
