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

pub fn run(args: ProfilesArgs) -> Result<i32, crate::step::RunError> {
    match args.command {
        None => list(),
        Some(ProfilesCommand::Show { name }) => show(&name),
    }
}

fn list() -> Result<i32, crate::step::RunError> {
    let all = crate::policy::builtins();
    let width = all.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, description) in all {
        println!("{name:width$}  {description}");
    }
    Ok(0)
}

fn show(name: &str) -> Result<i32, crate::step::RunError> {
    match crate::policy::builtin_text(name) {
        Some(text) => {
            print!("{text}");
            Ok(0)
        }
        // The same message as `run --profile NAME` with an unknown name.
        None => match crate::policy::load_builtin(name) {
            Err(e) => Err(e.into()),
            Ok(_) => Ok(0),
        },
    }
}
