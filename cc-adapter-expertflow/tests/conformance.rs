//! The cc conformance suite against the Expertflow simulator, through the testkit's fault
//! proxy. Snapshots of the frames the client sends are in
//! `tests/snapshots/<scenario>@expertflow.snap`.

use std::sync::Arc;

use cc_adapter_expertflow::sim::{SimOptions, Simulator};
use cc_adapter_expertflow::{CAPABILITIES, ExpertflowSession};
use cc_core::{Session, TlsSettings, Vendor};
use cc_testkit::{Proxy, Started, Target};

const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");

async fn start() -> cc_core::Result<Started> {
    let sim = Simulator::start(SimOptions::default()).await?;
    let proxy = Proxy::start(sim.addr())
        .await
        .map_err(|e| cc_core::Error::transport(Vendor::Expertflow, "proxy", e))?;
    let cfg = sim.client_config(&format!("http://{}", proxy.addr()), "conformance-customer");
    let session = ExpertflowSession::connect(cfg.clone(), &TlsSettings::default()).await?;
    Ok(Started::new(Box::new(session), Arc::new(sim))
        .with_proxy(proxy)
        .with_reopen(move || {
            let cfg = cfg.clone();
            async move {
                let s = ExpertflowSession::connect(cfg, &TlsSettings::default()).await?;
                Ok(Box::new(s) as Box<dyn Session>)
            }
        }))
}

fn main() {
    cc_testkit::run(
        Target::new(Vendor::Expertflow, CAPABILITIES, SNAPSHOTS, start)
            // The download URL carries the proxy's port, which changes per run.
            .redaction(
                ".**.mediaUrl",
                "http://127.0.0.1:[port]/file-engine/api/downloadFileStream?filename=[stored name]",
            ),
    );
}
