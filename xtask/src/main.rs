//! Workspace tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: everything CI runs, in order, stopping at the first failure.
//! - `cargo xtask codegen [--check]`: the generated parts of the docs (capability matrix, event
//!   table, limits), rendered by calling the compiled-in adapters themselves.

mod bench;
mod ci;
mod codegen;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The error type of every task: a message for the person at the terminal.
type Error = Box<dyn std::error::Error>;

/// Workspace tasks for the cc SDK.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run everything CI runs (fmt, clippy, tests, doctests, docs, codegen check), in order,
    /// stopping at the first failure.
    Ci,
    /// Regenerate the capability matrix, the event table and the limits in README.md and docs/.
    Codegen {
        /// Only check that the generated files are up to date; fail if they are not.
        #[arg(long)]
        check: bool,
    },
    /// Run the benchmarks (`cargo bench -p cc-bench`) and `cc-cli load` with many customers,
    /// and print a summary table.
    Bench(bench::Args),
}

/// The workspace root: the parent of this crate's folder.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the workspace root")
        .to_path_buf()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Ci => ci::run(&project_root()),
        Task::Codegen { check } => codegen::run(&project_root(), check),
        Task::Bench(args) => bench::run(&project_root(), &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
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
        let cli = Cli::try_parse_from(["cargo xtask", "codegen", "--check"]).unwrap();
        assert!(matches!(cli.task, Task::Codegen { check: true }));
        assert!(Cli::try_parse_from(["cargo xtask", "release"]).is_err());
    }

    #[test]
    fn the_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
