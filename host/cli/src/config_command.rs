//! `wasmhub config check FILE`: loads the config as the hub would and prints every problem with its place, or a
//! short confirmation; the exit code says which.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Report every error in a config file (file, line, key and the nearest valid key), or confirm it loads
    Check {
        /// The YAML config, shaped like Zero-to-JupyterHub's values
        file: PathBuf,
    },
}

pub(crate) fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Check { file } => match wasmhub_config::check(&file) {
            Ok(_) => {
                println!("{}: OK", file.display());
                Ok(())
            }
            Err(errors) => {
                for error in &errors {
                    eprintln!("{error}");
                }
                let plural = if errors.len() == 1 { "" } else { "s" };
                anyhow::bail!("{}: {} error{plural}", file.display(), errors.len())
            }
        },
    }
}
