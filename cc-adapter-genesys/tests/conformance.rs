//! The cc conformance suite against both Genesys transports and the simulator, through the
//! testkit's fault proxy. Snapshots of the frames each transport sends are in
//! `tests/snapshots/<scenario>@genesys-<transport>.snap`.

use std::sync::Arc;

use cc_adapter_genesys::sim::{SimOptions, Simulator};
use cc_adapter_genesys::{GUEST_CHAT_V2, GenesysConfig, GenesysSession, Transport, WEB_MESSAGING};
use cc_core::{Routing, Session, TlsSettings, Vendor};
use cc_testkit::{Proxy, Started, Target};

const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");

fn config(transport: Transport, base_url: &str, opts: &SimOptions) -> GenesysConfig {
    let mut c = GenesysConfig::web_messaging(base_url, &opts.deployment_id);
    c.transport = transport;
    if transport == Transport::GuestChatV2 {
        c.org_id = Some(opts.org_id.clone());
        c.routing.target_address = Some("Support".into());
        c.routing.priority = Some(2);
    }
    c
}

async fn start(transport: Transport) -> cc_core::Result<Started> {
    let opts = SimOptions::default();
    let sim = Simulator::start(opts.clone()).await?;
    let proxy = Proxy::start(sim.addr())
        .await
        .map_err(|e| cc_core::Error::transport(Vendor::Genesys, "proxy", e))?;
    let base = format!("http://{}", proxy.addr());
    let cfg = config(transport, &base, &opts);
    let session = GenesysSession::connect(cfg.clone(), &TlsSettings::default()).await?;
    let first = session.clone();
    Ok(Started::new(Box::new(session), Arc::new(sim))
        .with_proxy(proxy)
        .with_reopen(move || {
            let mut cfg = cfg.clone();
            cfg.session_token = first.resume_token();
            async move {
                let s = GenesysSession::connect(cfg, &TlsSettings::default()).await?;
                Ok(Box::new(s) as Box<dyn Session>)
            }
        }))
}

fn main() {
    let mut guest_request = cc_testkit::default_chat_request();
    guest_request.routing = Routing {
        target: Some("Support".into()),
        ..Routing::default()
    };
    cc_testkit::run_all(vec![
        Target::new(Vendor::Genesys, WEB_MESSAGING, SNAPSHOTS, || {
            start(Transport::WebMessaging)
        })
        .transport("web-messaging"),
        Target::new(Vendor::Genesys, GUEST_CHAT_V2, SNAPSHOTS, || {
            start(Transport::GuestChatV2)
        })
        .transport("guest-chat-v2")
        .chat_request(guest_request),
    ]);
}
