//! `noex-chaos`: see the library's documentation (`src/lib.rs`) or `noex-chaos --help`.

fn main() -> std::process::ExitCode {
    noex_chaos::main()
}
