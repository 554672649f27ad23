//! The real `counter-node` program, built inside the tests crate so that its end-to-end tests can run it
//! (`CARGO_BIN_EXE_e2e-counter-node`): cargo gives integration tests the paths of their own crate's binaries only.

fn main() -> std::process::ExitCode {
    counter_node::main()
}
