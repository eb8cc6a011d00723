//! The `stepjail` binary: parse the command line, hand it to the library, exit with its code.
//! The process stays single-threaded until the sandbox is cloned (see `sandbox::run`).

fn main() {
    let cli = stepjail::cli::Cli::parse_args();
    std::process::exit(stepjail::cli::main(cli));
}
