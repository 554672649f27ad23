//! The real `noex-chaos` program, built inside the tests crate so that its end-to-end test can run it
//! (`CARGO_BIN_EXE_e2e-noex-chaos`): cargo gives integration tests the paths of their own crate's binaries only.

fn main() -> std::process::ExitCode {
    noex_chaos::main()
}
