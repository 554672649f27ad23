//! The `observer-node` program, built inside the tests crate so that end-to-end tests can start it as an OS
//! process (`CARGO_BIN_EXE_e2e-observer-node`). Same code as `apps/observer-node`'s binary, allocator included.

use noex_observer::{CountingAllocator, counting_allocator};

/// Counts heap bytes in use, as the real binary does.
#[global_allocator]
static HEAP: CountingAllocator = counting_allocator();

fn main() -> std::process::ExitCode {
    observer_node::main(Some(&HEAP))
}
