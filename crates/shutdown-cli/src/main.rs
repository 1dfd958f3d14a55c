//! `shutdownctl`: the operator's commands of [`shutdown_cli`].

fn main() -> std::process::ExitCode {
    shutdown_cli::main()
}
