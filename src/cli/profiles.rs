//! `stepjail profiles [show NAME]`: the built-in profiles, one line each, or one profile's YAML.

#[derive(Debug, clap::Args)]
pub struct ProfilesArgs {
    #[command(subcommand)]
    pub command: Option<ProfilesCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProfilesCommand {
    /// Print a built-in profile's YAML, as embedded in this binary (comments included).
    Show {
        /// The built-in profile's name (see `stepjail profiles`).
        name: String,
    },
}

pub fn run(args: ProfilesArgs) -> i32 {
    match args.command {
        None => list(),
        Some(ProfilesCommand::Show { name }) => show(&name),
    }
}

fn list() -> i32 {
    let all = crate::policy::builtins();
    let width = all.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, description) in all {
        println!("{name:width$}  {description}");
    }
    0
}

fn show(name: &str) -> i32 {
    match crate::policy::builtin_text(name) {
        Some(text) => {
            print!("{text}");
            0
        }
        None => {
            // The same message as `run --profile NAME` with an unknown name.
            let err = crate::policy::load_builtin(name)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            eprintln!("stepjail: {err}");
            super::exit::EXIT_USAGE
        }
    }
}
