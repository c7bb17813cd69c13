//! The simulator entry for tools (`cc-cli sim`, `cc-cli demo`, `cc-cli load`).

use std::sync::Arc;

use cc_core::{Error, Vendor};
use cc_testkit::{RunningSim, SimEntry, SimStart, StartSimFuture};

use super::{SimOptions, Simulator};
use crate::config::Transport;

/// Starts the Tetherfi simulator for either transport (`dwr`, the default, or `ws`).
pub const SIM: SimEntry = SimEntry {
    vendor: Vendor::Tetherfi,
    transports: &["dwr", "ws"],
    start,
};

fn start(start: SimStart) -> StartSimFuture {
    Box::pin(async move {
        let transport = match start.transport.as_deref() {
            None | Some("dwr") => Transport::Dwr,
            Some("ws") => Transport::Ws,
            Some(other) => {
                return Err(Error::invalid(
                    Vendor::Tetherfi,
                    "transport",
                    format!("`{other}`: the simulator serves `dwr` and `ws`"),
                ));
            }
        };
        // Tools serve many customers at once (`cc-cli load`, the memory benchmark): no cap on
        // concurrent chats; the tests of the vendor's cap set `max_concurrent` themselves.
        let sim = Simulator::start(SimOptions {
            port: start.port,
            max_concurrent: usize::MAX,
            ..SimOptions::default()
        })
        .await?;
        let config = sim.cc_config(transport);
        let addr = sim.addr();
        Ok(RunningSim {
            control: Arc::new(sim),
            config,
            addr,
            transport: transport.name(),
        })
    })
}
