//! Behaviour tests of `noex-core`: what a user of one runtime can observe.

mod deferred;
mod encoded;
mod introspection;
mod lifecycle;
mod link;
mod monitor;
mod registry;
mod requests;
mod server;
mod supervisor;
mod support;
mod timers;
