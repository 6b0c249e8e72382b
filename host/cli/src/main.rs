//! The `wasmhub` binary. It parses the command line, sets up logging and hands over to a library; nothing else.

mod config_command;
mod logging;
mod policy_command;
mod proxy_command;
mod serve_command;
mod settings;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wasmhub", version, about = "A multi-user Jupyter hub with sandboxed WebAssembly policies")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub with its proxy and spawner in one process (embedded defaults without a config file).
    Serve(Box<serve_command::ServeArgs>),
    /// Run the HTTP/WebSocket proxy alone: a drop-in for configurable-http-proxy (same flags and REST API).
    Proxy(Box<proxy_command::ProxyArgs>),
    /// Check a config file as the hub would load it.
    Config(config_command::ConfigArgs),
    /// Check a policy or run it on a JSON fixture, with the limits the hub applies.
    Policy(policy_command::PolicyArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve_command::run(*args),
        Command::Proxy(args) => proxy_command::run(*args),
        Command::Policy(args) => policy_command::run(args),
        Command::Config(args) => config_command::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wasmhub: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
