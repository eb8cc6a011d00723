//! `stepjail check FILE|NAME...`: validates every file (or built-in profile), reports the first
//! error in each, exits 1 if any failed.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Profile or policy files to validate, or names of built-in profiles (see `stepjail
    /// profiles`). A name is a built-in only when no file of that name exists.
    #[arg(required = true, value_name = "FILE|NAME")]
    pub files: Vec<PathBuf>,
}

/// Each file's error is the check's report (one line each, all files checked), not a failure
/// of the command: it ends with exit code 1 then.
pub fn run(args: CheckArgs) -> Result<i32, crate::step::RunError> {
    let mut failed = 0;
    for f in &args.files {
        let builtin = f
            .to_str()
            .filter(|n| !f.exists() && crate::policy::builtin_text(n).is_some());
        let result = match builtin {
            Some(name) => crate::policy::load_builtin(name).map(drop),
            None => crate::policy::check_file(f),
        };
        match result {
            Ok(()) => println!("{}: ok", f.display()),
            Err(e) => {
                say!("stepjail: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { crate::exit::FAILURE } else { 0 })
}
