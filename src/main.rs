//! The `agentbak` binary: parse, run, exit with the documented code. All work is in the library.

fn main() -> std::process::ExitCode {
    agentbak::cli::run().into()
}
