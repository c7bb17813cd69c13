//! `cc-cli`: the command-line program of the cc contact-center SDK.
//!
//! One module per subcommand; each has an `Args` struct (its flags) and a `run` function.
//! `main` only parses the command line and dispatches.

mod adapters;
mod chat;
mod demo;
mod load;
mod sim;
mod simproc;
mod status;
mod target;

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
    /// Chat as the customer from the terminal (or line by line with --plain).
    Chat(chat::Args),
    /// Serve a vendor simulator on 127.0.0.1, with an agent console on stdin.
    Sim(sim::Args),
    /// Health check and service status (opening hours, queue, expected wait).
    Status(status::Args),
    /// Run N synthetic customers concurrently and report losses, duplicates and latency.
    Load(load::Args),
    /// A simulator serving a parent process through stdin and stdout (what `load` starts).
    #[command(hide = true)]
    SimWorker(simproc::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Not locked for the whole run: `sim` prints from background tasks too.
    let mut out = std::io::stdout();
    let result = match cli.command {
        Command::Adapters(args) => adapters::run(&args, &mut out),
        Command::Demo(args) => demo::run(&args, &mut out),
        Command::Chat(args) => chat::run(&args, &mut out),
        Command::Sim(args) => sim::run(&args, &mut out),
        Command::Status(args) => status::run(&args, &mut out),
        Command::Load(args) => load::run(&args, &mut out),
        Command::SimWorker(args) => simproc::run_worker(&args, &mut out),
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
