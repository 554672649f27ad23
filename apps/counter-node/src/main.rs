//! `counter-node`: see the library's documentation (`src/lib.rs`) or `counter-node --help`.

fn main() -> std::process::ExitCode {
    counter_node::main()
}
