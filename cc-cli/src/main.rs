//! `cc-cli`: the command-line program of the cc contact-center SDK.
//!
//! One module per subcommand; each has an `Args` struct (its flags) and a `run` function.
//! `main` only parses the command line and dispatches.

mod adapters;
mod demo;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command-line program of the cc contact-center SDK.
#[derive(Debug, Parser)]
#[command(name = "cc-cli", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the adapters compiled into this program, with their transports and capabilities.
    Adapters(adapters::Args),
    /// Run one scripted conversation through every adapter against its embedded simulator.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Adapters(args) => adapters::run(&args, &mut out),
        Command::Demo(args) => demo::run(&args, &mut out),
    };
    match result.and_then(|()| out.flush().map_err(Into::into)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cc-cli: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        assert_eq!(Cli::command().get_name(), "cc-cli");
    }
}
