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
        let sim = Simulator::start(SimOptions {
            port: start.port,
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
