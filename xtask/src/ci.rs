//! `cargo xtask ci`: everything CI runs, in order, stopping at the first failure.
//!
//! The steps, cheapest first so a mistake shows early:
//!
//! 1. `cargo fmt --all --check`
//! 2. `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! 3. `cargo clippy -p cc-sdk --all-targets [--features <vendor>] -- -D warnings`, with no
//!    feature and then once per vendor feature (features are additive and each builds alone)
//! 4. `cargo nextest run --workspace --all-features --profile ci`
//! 5. `cargo test --doc --workspace --all-features` (nextest does not run doctests)
//! 6. `cargo doc --workspace --no-deps --all-features` with `RUSTDOCFLAGS=-D warnings`
//! 7. `cargo xtask codegen --check` (run in this process)

use std::path::Path;
use std::time::Instant;

use cc_sdk::Vendor;
use xshell::{Cmd, Shell, cmd};

use crate::Error;

/// Runs every step from the workspace root `root`.
pub(crate) fn run(root: &Path) -> Result<(), Error> {
    let sh = Shell::new()?;
    sh.change_dir(root);
    require_nextest(&sh)?;

    let started = Instant::now();
    let mut steps: Vec<(String, Cmd<'_>)> = vec![
        ("rustfmt".into(), cmd!(sh, "cargo fmt --all --check")),
        (
            "clippy".into(),
            cmd!(
                sh,
                "cargo clippy --workspace --all-targets --all-features -- -D warnings"
            ),
        ),
    ];
    steps.push((
        "clippy cc-sdk without features".into(),
        cmd!(sh, "cargo clippy -p cc-sdk --all-targets -- -D warnings"),
    ));
    for vendor in Vendor::ALL {
        let feature = cc_sdk::cargo_feature(vendor);
        steps.push((
            format!("clippy cc-sdk --features {feature}"),
            cmd!(
                sh,
                "cargo clippy -p cc-sdk --all-targets --features {feature} -- -D warnings"
            ),
        ));
    }
    steps.push((
        "tests".into(),
        cmd!(
            sh,
            "cargo nextest run --workspace --all-features --profile ci"
        ),
    ));
    steps.push((
        "doctests".into(),
        cmd!(sh, "cargo test --doc --workspace --all-features"),
    ));
    steps.push((
        "rustdoc".into(),
        cmd!(sh, "cargo doc --workspace --no-deps --all-features")
            .env("RUSTDOCFLAGS", "-D warnings"),
    ));

    let total = steps.len() + 1;
    for (i, (name, command)) in steps.into_iter().enumerate() {
        let line = command.to_string();
        announce(i + 1, total, &name, &line);
        let t = Instant::now();
        command
            .run()
            .map_err(|e| failed(&name, &line, &e.to_string()))?;
        done(&name, t);
    }

    let name = "codegen check";
    announce(total, total, name, "cargo xtask codegen --check");
    let t = Instant::now();
    crate::codegen::run(root, true)
        .map_err(|e| failed(name, "cargo xtask codegen --check", &e.to_string()))?;
    done(name, t);

    eprintln!(
        "\nxtask ci: all {total} steps passed in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}

fn require_nextest(sh: &Shell) -> Result<(), Error> {
    cmd!(sh, "cargo nextest --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .map_err(|_| {
            "cargo-nextest is not installed: run `cargo install --locked cargo-nextest`".into()
        })
}

fn announce(i: usize, total: usize, name: &str, line: &str) {
    eprintln!("\n==> xtask ci [{i}/{total}] {name}: {line}");
}

fn done(name: &str, since: Instant) {
    eprintln!("==> {name}: ok ({}s)", since.elapsed().as_secs());
}

fn failed(name: &str, line: &str, error: &str) -> Error {
    format!(
        "xtask ci stopped: step `{name}` failed.\n  command: {line}\n  {error}\n\
         Fix it, then run `cargo xtask ci` again."
    )
    .into()
}
