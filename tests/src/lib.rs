//! Shared support for the workspace-level tests: the layering rule, fixtures for in-process nodes (ephemeral
//! ports, short timers, a shared test cookie; bare clusters or the whole distribution stack), views of process groups, test servers with
//! encodable messages, a pausable, throttling TCP proxy for fault injection (the chaos run's), busy cores, and apps driven as OS processes.

pub mod apps;
pub mod cluster;
pub mod dist;
pub mod groups;
pub mod layering;
pub mod load;
pub mod observer;
pub mod proxy;
pub mod remote;
pub mod servers;
