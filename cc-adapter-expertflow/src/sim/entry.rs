//! The simulator entry for tools (`cc-cli sim`, `cc-cli demo`, `cc-cli load`).

use std::sync::Arc;

use cc_core::{Error, Vendor};
use cc_testkit::{RunningSim, SimEntry, SimStart, StartSimFuture};

use super::{SimOptions, Simulator};

/// The one transport: the web channel over Socket.IO plus the REST services.
const TRANSPORT: &str = "web-channel";

/// Starts the Expertflow simulator; the configuration it returns names a fresh customer.
pub const SIM: SimEntry = SimEntry {
    vendor: Vendor::Expertflow,
    transports: &[TRANSPORT],
    start,
};

fn start(start: SimStart) -> StartSimFuture {
    Box::pin(async move {
        if let Some(t) = start.transport.as_deref()
            && t != TRANSPORT
        {
            return Err(Error::invalid(
                Vendor::Expertflow,
                "transport",
                format!("`{t}`: the simulator serves `{TRANSPORT}`"),
            ));
        }
        let sim = Simulator::start(SimOptions {
            port: start.port,
            ..SimOptions::default()
        })
        .await?;
        let customer = format!("customer-{}", uuid::Uuid::new_v4().simple());
        let config = sim.config(&customer);
        let addr = sim.addr();
        Ok(RunningSim {
            control: Arc::new(sim),
            config,
            addr,
            transport: TRANSPORT,
        })
    })
}
