//! Benchmarks of the cc SDK, run against the simulators compiled into `cc-sdk`:
//!
//! - `throughput`: agent messages decoded and dispatched per second per core, per adapter
//!   and transport (CPU time of the one thread that runs the client);
//! - `latency`: a raw WebSocket echo round trip on loopback, and the SDK's send →
//!   `MessageSent` round trip per adapter; the difference is what the SDK adds;
//! - `memory`: resident memory per idle chat session with many sessions in one process
//!   (the simulator runs in a child process, so only client memory is counted).
//!
//! `cargo bench -p cc-bench` runs them in full; `cargo xtask bench` runs them and
//! `cc-cli load` with 5,000 customers, and prints a summary table. Built as tests (`cargo
//! test -p cc-bench --benches`), each runs a small smoke version. Every figure is printed as
//! one line `BENCH <metric> <vendor>/<transport> <value> <unit>` for tools to collect.
//!
//! Environment: `CC_BENCH_VENDOR` keeps one vendor; `CC_BENCH_TRANSPORT` keeps one transport
//! (also one `memory` does not measure by default, e.g. `tetherfi`'s `ws`);
//! `CC_BENCH_SESSIONS` sets the session count of `memory` (10,000 by default).

use std::sync::Arc;
use std::time::Duration;

use cc_sdk::testkit::{RunningSim, SimControl, SimEntry, SimStart};
use cc_sdk::{ChatRequest, Config, Customer, Event};
use futures::StreamExt;

/// The error type of the benchmarks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether this is a full run (`cargo bench` passes `--bench`) rather than a smoke test.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The simulator lanes to measure: every transport (or only the default one) of every
/// simulator, filtered by `CC_BENCH_VENDOR`. Fails when there is none, so a build without
/// simulators never reports an empty success.
pub fn lanes(default_only: bool) -> Result<Vec<(SimEntry, &'static str)>, BoxError> {
    let only = std::env::var("CC_BENCH_VENDOR").ok();
    let transport = std::env::var("CC_BENCH_TRANSPORT").ok();
    let mut out = Vec::new();
    for entry in cc_sdk::sims() {
        if only.as_deref().is_some_and(|v| v != entry.vendor.key()) {
            continue;
        }
        let transports = match &transport {
            // A named transport is measured even where only the default one would be.
            Some(t) => entry
                .transports
                .iter()
                .filter(|x| **x == t.as_str())
                .copied()
                .collect::<Vec<_>>(),
            None if default_only => entry.transports[..1].to_vec(),
            None => entry.transports.to_vec(),
        };
        out.extend(transports.into_iter().map(|t| (entry, t)));
    }
    if out.is_empty() {
        return Err(
            "no simulator to benchmark (check CC_BENCH_VENDOR, CC_BENCH_TRANSPORT and cc-sdk's sims())"
                .into(),
        );
    }
    Ok(out)
}

/// `vendor/transport`.
pub fn lane_name(entry: &SimEntry, transport: &str) -> String {
    format!("{}/{transport}", entry.vendor.key())
}

/// Prints one figure as a `BENCH` line on stdout.
pub fn report(metric: &str, lane: &str, value: f64, unit: &str) {
    println!("BENCH {metric} {lane} {value:.3} {unit}");
}

/// The median of `v` (the upper one for an even count); `NaN` when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time the calling thread has used (`/proc/thread-self/schedstat`, nanoseconds).
pub fn thread_cpu() -> Result<Duration, BoxError> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: u64 = text
        .split_whitespace()
        .next()
        .ok_or("empty schedstat")?
        .parse()?;
    Ok(Duration::from_nanos(ns))
}

/// The process's resident memory (`VmRSS`), in bytes.
pub fn resident_bytes() -> Result<u64, BoxError> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    let kb: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

/// The pause between two customer sends that keeps under the vendor's rate, with a margin.
pub fn send_gap(messages_per_second: Option<u32>) -> Duration {
    match messages_per_second {
        Some(n) if n > 0 => Duration::from_millis(1000 / u64::from(n) + 100),
        _ => Duration::ZERO,
    }
}

/// A simulator running on its own thread (a current-thread runtime), so the thread that
/// runs the client measures the client alone.
pub struct SimThread {
    /// Spawns work (agent actions) on the simulator's thread.
    pub handle: tokio::runtime::Handle,
    /// The simulator's agent side.
    pub control: Arc<dyn SimControl>,
    /// A client configuration for it.
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimThread {
    /// Starts `entry`'s simulator for `transport` on a new thread.
    pub fn start(entry: SimEntry, transport: &str) -> Result<SimThread, BoxError> {
        let (tx, rx) = std::sync::mpsc::channel::<Result<_, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let transport = transport.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let port = match cc_sdk::testkit::own_port() {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let start = SimStart {
                    transport: Some(transport),
                    port,
                };
                match (entry.start)(start).await {
                    Ok(sim) => {
                        let _ = tx.send(Ok((
                            tokio::runtime::Handle::current(),
                            Arc::clone(&sim.control),
                            sim.config.clone(),
                        )));
                        let _keep: RunningSim = sim;
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        let (handle, control, config) = rx.recv()??;
        Ok(SimThread {
            handle,
            control,
            config,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Runs `f` with the simulator's control on the simulator's thread and waits for it.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, BoxError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn SimControl>) -> Fut,
        Fut: std::future::Future<Output = cc_sdk::Result<T>> + Send + 'static,
    {
        let fut = f(Arc::clone(&self.control));
        Ok(self.handle.spawn(fut).await??)
    }
}

impl Drop for SimThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A customer for benchmarks, named so the simulator's chat list shows it.
pub fn chat_request(name: &str) -> ChatRequest {
    ChatRequest {
        customer: Customer {
            id: Some(name.to_owned()),
            nickname: Some(name.to_owned()),
            ..Customer::default()
        },
        ..ChatRequest::default()
    }
}

/// Waits up to `timeout` for an event `pred` accepts.
pub async fn wait_for(
    stream: &mut cc_sdk::EventStream,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Result<Event, BoxError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(format!("no {what} within {timeout:?}").into()),
            Ok(None) => return Err(format!("the session closed before {what}").into()),
            Ok(Some(ev)) if pred(&ev) => return Ok(ev),
            Ok(Some(_)) => {}
        }
    }
}

/// The configuration as JSON (`vendor`, `tls`, the vendor's section), read back with
/// [`Config::from_value`]: how the memory benchmark's simulator process hands it over.
pub fn config_json(config: &Config) -> Result<serde_json::Value, BoxError> {
    let mut root = serde_json::Map::new();
    root.insert("vendor".into(), config.vendor.key().into());
    root.insert("tls".into(), serde_json::to_value(&config.tls)?);
    root.insert(
        config.vendor.key().into(),
        config
            .raw_section()
            .cloned()
            .ok_or("configuration without a section")?,
    );
    Ok(serde_json::Value::Object(root))
}

/// The string fields of a simulator's configuration section that differ between two starts,
/// other than addresses and signed tokens: the customer identity, for vendors that keep it
/// in the configuration. Sessions that must be distinct customers get their own values.
pub fn identity_fields(a: &Config, b: &Config) -> Vec<String> {
    let (Some(a), Some(b)) = (a.raw_section(), b.raw_section()) else {
        return Vec::new();
    };
    let jwt = |v: &str| v.split('.').count() >= 3 && v.contains("eyJ");
    let mut fields = Vec::new();
    for (k, v) in a.as_object().into_iter().flatten() {
        if let (Some(x), Some(y)) = (v.as_str(), b.get(k).and_then(|w| w.as_str()))
            && x != y
            && !x.contains("127.0.0.1")
            && !x.contains("://")
            && !jwt(x)
        {
            fields.push(k.clone());
        }
    }
    fields
}

/// `config` with each field of `fields` suffixed by `-<tag>`: a distinct customer.
pub fn vary(config: &Config, fields: &[String], tag: &str) -> Result<Config, BoxError> {
    let mut root = config_json(config)?;
    let section = root
        .get_mut(config.vendor.key())
        .and_then(|s| s.as_object_mut())
        .ok_or("configuration without a section")?;
    for f in fields {
        let v = section
            .get(f)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("no string field {f}"))?;
        let nv = format!("{v}-{tag}");
        section.insert(f.clone(), nv.into());
    }
    Ok(Config::from_value(root)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn proc_figures_are_readable() {
        let a = thread_cpu().unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu().unwrap() > a);
        assert!(resident_bytes().unwrap() > 0);
    }

    #[test]
    fn the_config_survives_the_json_hand_over() {
        let config = Config::new(
            cc_sdk::Vendor::Genesys,
            serde_json::json!({"base_url": "http://127.0.0.1:1", "deployment_id": "d"}),
        )
        .unwrap();
        let back = Config::from_value(config_json(&config).unwrap()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn identity_fields_are_the_ones_that_change_and_vary_makes_them_unique() {
        let mk = |id: &str, port: u16| {
            Config::new(
                cc_sdk::Vendor::Expertflow,
                serde_json::json!({
                    "base_url": format!("http://127.0.0.1:{port}"),
                    "customer": id,
                    "token": format!("jwt.eyJ{id}.eyJx.sig"),
                    "fixed": "f",
                }),
            )
            .unwrap()
        };
        let (a, b) = (mk("c1", 1), mk("c2", 2));
        let fields = identity_fields(&a, &b);
        assert_eq!(fields, ["customer"]);
        let v = vary(&a, &fields, "7").unwrap();
        assert_eq!(v.raw_section().unwrap()["customer"], "c1-7");
        assert_eq!(v.raw_section().unwrap()["fixed"], "f");
    }

    #[test]
    fn sends_keep_under_the_rate() {
        assert_eq!(send_gap(None), Duration::ZERO);
        assert_eq!(send_gap(Some(2)), Duration::from_millis(600));
    }
}
