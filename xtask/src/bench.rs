//! `cargo xtask bench`: the benchmarks of `cc-bench` (`cargo bench -p cc-bench`), then
//! `cc-cli load` with many concurrent customers against each simulator, and one summary table.
//!
//! The benchmarks print `BENCH <metric> <lane> <value> <unit>` lines; `load` prints its report
//! as JSON. Everything runs in release mode on this machine, one run each: the figures are
//! the medians each benchmark measured.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Error;

/// Flags of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only this vendor's simulator (expertflow, tvox, avaya, genesys, tetherfi).
    #[arg(long)]
    vendor: Option<String>,
    /// Customers of the `cc-cli load` run.
    #[arg(long, default_value_t = 5000)]
    customers: usize,
    /// How long each load customer chats.
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Over how long the load customers start.
    #[arg(long, default_value = "30s")]
    ramp: String,
    /// Pause between a load customer's messages.
    #[arg(long, default_value = "5s")]
    think: String,
    /// Skip the `cc-cli load` runs.
    #[arg(long)]
    skip_load: bool,
    /// Skip `cargo bench -p cc-bench`.
    #[arg(long)]
    skip_benches: bool,
}

/// One figure of a benchmark.
#[derive(Debug, PartialEq)]
struct Figure {
    metric: String,
    lane: String,
    value: f64,
    unit: String,
}

fn parse_line(line: &str) -> Option<Figure> {
    let mut parts = line.strip_prefix("BENCH ")?.split_whitespace();
    let metric = parts.next()?.to_owned();
    let lane = parts.next()?.to_owned();
    let value = parts.next()?.parse().ok()?;
    let unit = parts.next()?.to_owned();
    Some(Figure {
        metric,
        lane,
        value,
        unit,
    })
}

/// Runs `cmd`, echoing its stdout, and returns the stdout lines and whether it succeeded.
fn run_lines(mut cmd: Command) -> Result<(Vec<String>, bool), Error> {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().ok_or("no stdout")?).lines() {
        let line = line?;
        println!("{line}");
        lines.push(line);
    }
    Ok((lines, child.wait()?.success()))
}

/// Runs `cmd`, echoing its stdout, and returns the stdout lines; fails when `cmd` fails.
fn run_echoed(mut cmd: Command) -> Result<Vec<String>, Error> {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().ok_or("no stdout")?).lines() {
        let line = line?;
        println!("{line}");
        lines.push(line);
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("{shown} failed ({status})").into());
    }
    Ok(lines)
}

pub(crate) fn run(root: &Path, args: &Args) -> Result<(), Error> {
    let mut figures = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    if !args.skip_benches {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root).args(["bench", "-p", "cc-bench"]);
        if let Some(v) = &args.vendor {
            cmd.env("CC_BENCH_VENDOR", v);
        }
        let (lines, ok) = run_lines(cmd)?;
        figures.extend(lines.iter().filter_map(|l| parse_line(l)));
        if !ok {
            failures.push("cargo bench -p cc-bench (see the FAILED lanes above)".to_owned());
        }
    }
    let mut loads = Vec::new();
    if !args.skip_load {
        let mut vendors: Vec<String> = Vec::new();
        match &args.vendor {
            Some(v) => vendors.push(v.clone()),
            None => {
                for f in &figures {
                    if let Some((v, _)) = f.lane.split_once('/')
                        && !vendors.iter().any(|x| x == v)
                    {
                        vendors.push(v.to_owned());
                    }
                }
            }
        }
        if vendors.is_empty() {
            return Err("no vendor to load-test: give --vendor".into());
        }
        let mut build = Command::new("cargo");
        build
            .current_dir(root)
            .args(["build", "--release", "-p", "cc-cli"]);
        run_echoed(build)?;
        for vendor in vendors {
            let mut cmd = Command::new(root.join("target/release/cc-cli"));
            cmd.current_dir(root).args([
                "load",
                "--sim",
                &vendor,
                "--customers",
                &args.customers.to_string(),
                "--duration",
                &args.duration,
                "--ramp",
                &args.ramp,
                "--think",
                &args.think,
                "--json",
            ]);
            // A run with losses exits non-zero but still prints its report.
            let shown = format!("{cmd:?}");
            eprintln!("$ {shown}");
            let out = cmd.stderr(Stdio::inherit()).output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            println!("{text}");
            let report: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{shown}: no JSON report ({e})"))?;
            loads.push((vendor, report));
        }
    }
    println!("{}", table(&figures, &loads));
    let unclean: Vec<&str> = loads
        .iter()
        .filter(|(_, r)| {
            r["messages"]["lost"] != 0
                || r["messages"]["duplicated"] != 0
                || r["sessions"]["failed"] != 0
        })
        .map(|(v, _)| v.as_str())
        .collect();
    if !unclean.is_empty() {
        failures.push(format!(
            "load runs with losses, duplicates or failed sessions: {}",
            unclean.join(", ")
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

fn describe(metric: &str) -> &str {
    match metric {
        "decode_dispatch_per_core" => "messages decoded+dispatched per core",
        "raw_ws_round_trip" => "raw WebSocket round trip",
        "sdk_send_round_trip" => "SDK send -> MessageSent",
        "sdk_added_latency" => "latency added by the SDK",
        "memory_per_idle_session" => "memory per idle chat session",
        other => other,
    }
}

fn table(figures: &[Figure], loads: &[(String, serde_json::Value)]) -> String {
    let mut s = String::from("\nSummary (medians, one run, this machine)\n");
    s.push_str(&format!(
        "  {:<40} {:<26} {:>14}\n",
        "benchmark", "lane", "median"
    ));
    for f in figures {
        s.push_str(&format!(
            "  {:<40} {:<26} {:>14}\n",
            describe(&f.metric),
            f.lane,
            format!("{:.1} {}", f.value, f.unit)
        ));
    }
    for (vendor, r) in loads {
        // A figure of the report, scaled and rounded, or `-` where the report has none.
        let fig = |v: &serde_json::Value, scale: f64, decimals: usize| {
            v.as_f64()
                .map_or_else(|| "-".to_owned(), |x| format!("{:.decimals$}", x / scale))
        };
        let ms = |k: &str| fig(&r["round_trip"]["send"][k], 1.0, 1);
        let reply = |k: &str| fig(&r["round_trip"]["reply"][k], 1.0, 1);
        let mib = |k: &str| fig(&r[k], 1024.0 * 1024.0, 0);
        let (peak, sim_peak) = (mib("peak_memory_bytes"), mib("sim_peak_memory_bytes"));
        s.push_str(&format!(
            "  cc-cli load {} customers against {vendor}: sessions {}/{} completed, \
             messages sent {} received {}, lost {}, duplicated {}, \
             send p50/p95/p99 {}/{}/{} ms, reply p50/p95/p99 {}/{}/{} ms, \
             peak memory {peak} MiB (simulator process {sim_peak} MiB)\n",
            r["customers"],
            r["sessions"]["completed"],
            r["customers"],
            r["messages"]["sent"],
            r["messages"]["received"],
            r["messages"]["lost"],
            r["messages"]["duplicated"],
            ms("p50_ms"),
            ms("p95_ms"),
            ms("p99_ms"),
            reply("p50_ms"),
            reply("p95_ms"),
            reply("p99_ms"),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_parse_and_others_do_not() {
        assert_eq!(
            parse_line("BENCH memory_per_idle_session genesys/web-messaging 12.500 KiB"),
            Some(Figure {
                metric: "memory_per_idle_session".into(),
                lane: "genesys/web-messaging".into(),
                value: 12.5,
                unit: "KiB".into(),
            })
        );
        assert_eq!(parse_line("genesys: 12 KiB"), None);
        assert_eq!(parse_line("BENCH x y notanumber u"), None);
    }

    #[test]
    fn the_table_lists_figures_and_load_runs() {
        let f = parse_line("BENCH raw_ws_round_trip loopback 50.7 us").unwrap();
        let load = serde_json::json!({
            "customers": 5000,
            "sessions": {"completed": 5000},
            "messages": {"sent": 10, "received": 10, "lost": 0, "duplicated": 0},
            "round_trip": {"send": {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}, "reply": {}},
            "peak_memory_bytes": 1048576.0 * 300.0,
            "sim_peak_memory_bytes": 1048576.0 * 410.0,
        });
        let t = table(&[f], &[("genesys".into(), load)]);
        assert!(t.contains("raw WebSocket round trip"), "{t}");
        assert!(t.contains("50.7 us"), "{t}");
        assert!(t.contains("sessions 5000/5000 completed"), "{t}");
        assert!(
            t.contains("send p50/p95/p99 1.0/2.0/3.0 ms, reply p50/p95/p99 -/-/- ms"),
            "{t}"
        );
        assert!(
            t.contains("peak memory 300 MiB (simulator process 410 MiB)"),
            "{t}"
        );
    }
}
