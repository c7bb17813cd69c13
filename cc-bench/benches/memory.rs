//! Resident memory per idle chat session, with many sessions in one process.
//!
//! The simulator runs in a child process (this same program, started with
//! `CC_BENCH_SIM_CHILD=<vendor>/<transport>`), so the parent holds client sessions only.
//! After a warm-up of 20 sessions, the parent opens N more (`CC_BENCH_SESSIONS`, 10,000 by
//! default), each connected with one chat started and one event subscriber, lets them settle,
//! and divides the growth of its resident memory by N. Every transport of every simulator is
//! measured (`CC_BENCH_VENDOR` and `CC_BENCH_TRANSPORT` narrow it), each lane in a process of
//! its own.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_bench::{
    BoxError, chat_request, config_json, full_run, identity_fields, lane_name, lanes, report,
    resident_bytes, vary,
};
use cc_sdk::{Config, Engagement, EventStream, Session};
use futures::StreamExt;

const CHILD: &str = "CC_BENCH_SIM_CHILD";

fn main() -> Result<(), BoxError> {
    if let Ok(lane) = std::env::var(CHILD) {
        return serve_sim(&lane);
    }
    let n: usize = match std::env::var("CC_BENCH_SESSIONS") {
        Ok(v) => v.parse().map_err(|_| "CC_BENCH_SESSIONS: a number")?,
        Err(_) if full_run() => 10_000,
        Err(_) => 50,
    };
    let lanes = lanes(false)?;
    let mut failed = Vec::new();
    if let [(entry, transport)] = lanes.as_slice() {
        let lane = lane_name(entry, transport);
        if let Err(e) = lane_run(&lane, n) {
            eprintln!("{lane}: FAILED: {e}");
            failed.push(lane);
        }
    } else {
        // One process per lane: memory a finished lane freed stays resident and would hide
        // the next lane's growth.
        for (entry, transport) in lanes {
            let lane = lane_name(&entry, transport);
            let status = Command::new(std::env::current_exe()?)
                .args(std::env::args_os().skip(1))
                .env("CC_BENCH_VENDOR", entry.vendor.key())
                .env("CC_BENCH_TRANSPORT", transport)
                .env("CC_BENCH_SESSIONS", n.to_string())
                .status()?;
            if !status.success() {
                failed.push(lane);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed lanes: {}", failed.join(", ")).into())
    }
}

fn lane_run(lane: &str, n: usize) -> Result<(), BoxError> {
    {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD, lane)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("child stdout")?).read_line(&mut line)?;
        let hand_over: serde_json::Value = serde_json::from_str(&line)?;
        let config = Config::from_value(hand_over["config"].clone())?;
        let fields: Vec<String> = serde_json::from_value(hand_over["vary"].clone())?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let result = rt.block_on(measure(&config, &fields, n));
        rt.shutdown_background();
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
        let (per_session, opened, took) = result?;
        eprintln!(
            "{lane}: {:.1} KiB per idle chat session ({opened} sessions opened in {:.1} s)",
            per_session / 1024.0,
            took.as_secs_f64()
        );
        report("memory_per_idle_session", lane, per_session / 1024.0, "KiB");
    }
    Ok(())
}

/// An idle customer: its session, its chat, and one event subscriber, as an app holds them.
struct Idle {
    _session: Box<dyn Session>,
    _chat: Arc<dyn Engagement>,
    _events: EventStream,
}

/// Resident memory beyond which a lane stops opening sessions: the machine is shared.
const MEMORY_GUARD: u64 = 6 << 30;

static OVER_GUARD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn open(config: Config, fields: Arc<Vec<String>>, i: usize) -> Result<Idle, BoxError> {
    if OVER_GUARD.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(format!(
            "stopped: the process passed {} GiB resident",
            MEMORY_GUARD >> 30
        )
        .into());
    }
    let config = vary(&config, &fields, &format!("idle-{i}"))?;
    // AXP knows a customer by its token's `sub`, and one customer's sessions all list each
    // other's chats: each idle customer gets its own token, as a real customer would.
    let config = if config.vendor == cc_sdk::Vendor::Avaya {
        cc_sdk::avaya::sim::customer_config(&config, &format!("idle-{i:05}")).await?
    } else {
        config
    };
    let session = cc_sdk::connect(&config).await?;
    let events = session.events();
    let chat = session
        .start_chat(chat_request(&format!("idle-{i:05}")))
        .await?;
    Ok(Idle {
        _session: session,
        _chat: chat,
        _events: events,
    })
}

async fn open_many(
    config: &Config,
    fields: &Arc<Vec<String>>,
    from: usize,
    n: usize,
) -> (Vec<Idle>, Vec<String>) {
    let results: Vec<Result<Idle, BoxError>> = futures::stream::iter(from..from + n)
        .map(|i| {
            let config = config.clone();
            let fields = Arc::clone(fields);
            async move {
                tokio::spawn(open(config, fields, i))
                    .await
                    .map_err(BoxError::from)?
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut ok = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(idle) => ok.push(idle),
            Err(e) => errors.push(cc_sdk::error_with_causes(&*e)),
        }
    }
    (ok, errors)
}

async fn measure(
    config: &Config,
    fields: &[String],
    n: usize,
) -> Result<(f64, usize, Duration), BoxError> {
    let fields = Arc::new(fields.to_vec());
    OVER_GUARD.store(false, std::sync::atomic::Ordering::Relaxed);
    let guard = tokio::spawn(async {
        loop {
            if resident_bytes().is_ok_and(|b| b > MEMORY_GUARD) {
                OVER_GUARD.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (warm, errors) = open_many(config, &fields, 0, 20).await;
    if !errors.is_empty() {
        return Err(format!("warm-up: {}", errors[0]).into());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_bytes()?;
    let t0 = Instant::now();
    let (sessions, errors) = open_many(config, &fields, 20, n).await;
    let took = t0.elapsed();
    if !errors.is_empty() {
        eprintln!(
            "{} of {n} sessions failed to open (the figure counts the {} that opened); first: {}",
            errors.len(),
            sessions.len(),
            errors[0]
        );
    }
    guard.abort();
    if OVER_GUARD.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(format!(
            "more than {} GiB resident after {} sessions: stopped",
            MEMORY_GUARD >> 30,
            sessions.len()
        )
        .into());
    }
    if sessions.is_empty() {
        return Err("no session opened".into());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = resident_bytes()?;
    let opened = sessions.len();
    let per = after.saturating_sub(before) as f64 / opened as f64;
    drop(sessions);
    drop(warm);
    Ok((per, opened, took))
}

/// Child mode: start the simulator, print its configuration as one JSON line, serve until
/// stdin closes.
fn serve_sim(lane: &str) -> Result<(), BoxError> {
    let (vendor, transport) = lane
        .split_once('/')
        .ok_or("CC_BENCH_SIM_CHILD: vendor/transport")?;
    let entry = cc_sdk::sims()
        .into_iter()
        .find(|e| e.vendor.key() == vendor)
        .ok_or_else(|| format!("no simulator for {vendor}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let start = |port| cc_sdk::testkit::SimStart {
            transport: Some(transport.to_owned()),
            port,
        };
        // With a long poll held per session, a fault proxy's two more descriptors per
        // connection would need more than the process may open at 10,000 sessions.
        let sim = (entry.start)(start(cc_sdk::testkit::own_port()?)).await?;
        let fields = {
            let other = (entry.start)(start(0)).await?;
            identity_fields(&sim.config, &other.config)
        };
        let hand_over = serde_json::json!({"config": config_json(&sim.config)?, "vary": fields});
        let mut out = std::io::stdout().lock();
        writeln!(out, "{hand_over}")?;
        out.flush()?;
        drop(out);
        // Served until the parent closes our stdin.
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while tokio::io::AsyncReadExt::read(&mut stdin, &mut buf).await? > 0 {}
        drop(sim);
        Ok::<(), BoxError>(())
    })?;
    rt.shutdown_background();
    Ok(())
}
