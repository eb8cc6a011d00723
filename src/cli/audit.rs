//! `stepjail audit summarize|suggest FILE...`: read audit logs written with `--audit-log`.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// A table per destination: allowed, denied and would-deny attempts, bytes each way.
    Summarize {
        /// Audit logs (JSON Lines) written with `--audit-log`; several are merged.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The smallest profile whose `network:` block covers every destination seen (merging
    /// several runs); the output is a profile `stepjail check` accepts.
    Suggest {
        /// The suggested profile's name.
        #[arg(long, default_value = "suggested")]
        name: String,
        /// Suggest a policy file (`.github/stepjail.yml`) with one profile per CI step,
        /// from the log of a job run by `stepjail step`, instead of one profile.
        #[arg(long, conflicts_with = "name")]
        policy: bool,
        /// Audit logs (JSON Lines) written with `--audit-log`; several are merged.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn read_all(files: &[PathBuf]) -> Result<Vec<crate::audit::Record>, crate::audit::AuditError> {
    let mut records = Vec::new();
    for f in files {
        let log = crate::audit::read_log(f)?;
        if log.truncated_lines > 0 {
            say!(
                "stepjail: {}: skipped {} truncated last line",
                f.display(),
                log.truncated_lines
            );
        }
        records.extend(log.records);
    }
    Ok(records)
}

pub fn run(args: AuditArgs) -> Result<i32, crate::step::RunError> {
    use crate::step::RunError;
    let files = match &args.command {
        AuditCommand::Summarize { files } | AuditCommand::Suggest { files, .. } => files,
    };
    let records = read_all(files).map_err(|e| RunError::Read(e.to_string()))?;
    match &args.command {
        AuditCommand::Summarize { .. } => print!("{}", crate::audit::summarize(&records)),
        AuditCommand::Suggest {
            policy: false,
            name,
            ..
        } => print!("{}", crate::audit::suggest(&records, name)),
        AuditCommand::Suggest { policy: true, .. } => {
            let text = crate::audit::suggest_policy(&records)
                .map_err(|e| RunError::Read(e.to_string()))?;
            print!("{text}");
        }
    }
    Ok(0)
}
