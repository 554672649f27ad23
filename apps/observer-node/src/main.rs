//! `observer-node`: see the library's documentation.

use noex_observer::{CountingAllocator, counting_allocator};

/// Counts heap bytes in use, so that snapshots report them.
#[global_allocator]
static HEAP: CountingAllocator = counting_allocator();

fn main() -> std::process::ExitCode {
    observer_node::main(Some(&HEAP))
}
