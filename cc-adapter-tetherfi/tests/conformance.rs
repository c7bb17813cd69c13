//! The cc conformance suite against both Tetherfi transports and the simulator, through the
//! testkit's fault proxy. Snapshots of the frames each transport sends are in
//! `tests/snapshots/<scenario>@tetherfi-<transport>.snap`.

use std::sync::Arc;

use cc_adapter_tetherfi::sim::{SimOptions, Simulator};
use cc_adapter_tetherfi::{CAPABILITIES, TetherfiSession, Transport};
use cc_core::{Session, TlsSettings, Vendor};
use cc_testkit::{Direction, Frame, Proxy, Started, Target};

const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");

async fn start(transport: Transport) -> cc_core::Result<Started> {
    let sim = Simulator::start(SimOptions::default()).await?;
    let proxy = Proxy::start(sim.addr())
        .await
        .map_err(|e| cc_core::Error::transport(Vendor::Tetherfi, "proxy", e))?;
    let mut cfg = sim.config(transport);
    cfg.base_url = Some(format!("http://{}", proxy.addr()));
    let session = TetherfiSession::connect(cfg.clone(), &TlsSettings::default()).await?;
    let first = session.clone();
    Ok(Started::new(Box::new(session), Arc::new(sim))
        .with_proxy(proxy)
        .with_reopen(move || {
            let mut cfg = cfg.clone();
            cfg.resume_token = first.resume_token();
            async move {
                let s = TetherfiSession::connect(cfg, &TlsSettings::default()).await?;
                Ok(Box::new(s) as Box<dyn Session>)
            }
        }))
}

/// Polls, heartbeats, `IsValid` and the background `Ack`s of received messages depend on
/// timing (how many, and whether the last ones went out before the scenario ended); the
/// calls that carry the chat do not. `tests/multichat.rs` checks the acks.
fn keep(frame: &Frame) -> bool {
    frame.direction == Direction::ClientToServer
        && !frame.channel.contains("/plainpoll/")
        && !frame.channel.contains("checkHeartbeat")
        && !frame.channel.contains("IsValid")
        && !frame.channel.contains("__textchat.Ack")
        && frame.body.get("type").and_then(|t| t.as_str()) != Some("ack")
}

fn main() {
    cc_testkit::run_all(vec![
        Target::new(Vendor::Tetherfi, CAPABILITIES, SNAPSHOTS, || {
            start(Transport::Dwr)
        })
        .transport("dwr")
        .snapshot_filter(keep)
        .redaction("[].body.params[0].pClientTime", "[client time]"),
        Target::new(Vendor::Tetherfi, CAPABILITIES, SNAPSHOTS, || {
            start(Transport::Ws)
        })
        .transport("ws")
        .snapshot_filter(keep)
        .redaction("[].body.param.pClientTime", "[client time]"),
    ]);
}
