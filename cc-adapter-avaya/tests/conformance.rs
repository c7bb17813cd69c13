//! The cc conformance suite against the Avaya adapter and its simulator, through the
//! testkit's fault proxy. Snapshots of the requests each scenario sends (long polls left
//! out: their number depends on timing) are in `tests/snapshots/<scenario>@avaya.snap`.

use std::sync::Arc;
use std::time::Duration;

use cc_adapter_avaya::sim::{SimOptions, Simulator};
use cc_adapter_avaya::{AvayaSession, CAPABILITIES, Clock};
use cc_core::{Session, TlsSettings, Vendor};
use cc_testkit::{Frame, Proxy, Started, Target};

const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");

async fn start() -> cc_core::Result<Started> {
    let sim = Simulator::start(SimOptions {
        // Short holds keep the polls moving; the semantics are the same.
        hold: Duration::from_secs(2),
        ..SimOptions::default()
    })
    .await?;
    let proxy = Proxy::start(sim.addr())
        .await
        .map_err(|e| cc_core::Error::transport(Vendor::Avaya, "proxy", e))?;
    let mut cfg = sim.client_config()?;
    cfg.host_url = Some(format!("http://{}", proxy.addr()));
    // Production ranges; the grace is what the idle_warning scenario expects.
    cfg.idle_timeout_secs = 300;
    cfg.idle_shutdown_grace_secs = 60;
    let clock = Clock::new();
    sim.link_client(clock.clone(), cfg.idle_timeout(), cfg.grace());
    let session =
        AvayaSession::connect_with_clock(cfg.clone(), &TlsSettings::default(), clock).await?;
    let sim = Arc::new(sim);
    let reopen_sim = sim.clone();
    Ok(Started::new(Box::new(session), sim)
        .with_proxy(proxy)
        .with_reopen(move || {
            let cfg = cfg.clone();
            let sim = reopen_sim.clone();
            async move {
                let clock = Clock::new();
                sim.link_client(clock.clone(), cfg.idle_timeout(), cfg.grace());
                let s =
                    AvayaSession::connect_with_clock(cfg, &TlsSettings::default(), clock).await?;
                Ok(Box::new(s) as Box<dyn Session>)
            }
        }))
}

fn keep(f: &Frame) -> bool {
    !f.channel.ends_with("/events")
}

fn main() {
    cc_testkit::run(
        Target::new(Vendor::Avaya, CAPABILITIES, SNAPSHOTS, start)
            .snapshot_filter(keep)
            .step_timeout(Duration::from_secs(8)),
    );
}
