//! `stepjail check FILE...`: validates every file, reports the first error in each, exits 1 if
//! any failed.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Profile or policy files to validate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: CheckArgs) -> i32 {
    let mut failed = 0;
    for f in &args.files {
        match crate::policy::check_file(f) {
            Ok(()) => println!("{}: ok", f.display()),
            Err(e) => {
                eprintln!("stepjail: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 { 1 } else { 0 }
}
