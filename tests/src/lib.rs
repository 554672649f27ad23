//! Shared support for the workspace-level tests: the layering rule now; node fixtures, the fault-injecting TCP
//! proxy and helpers to drive the app binaries as the cluster layers land.

pub mod layering;
