//! Test kit for cc adapters: the conformance suite, the [`SimControl`] trait simulators
//! implement, a fault-injecting TCP [`Proxy`], and snapshot helpers.
//!
//! # The conformance suite
//!
//! Scenarios are written once against the trait set (`Session`, `Engagement`,
//! `EventStream`) and [`SimControl`], and run against every adapter with its simulator.
//! An adapter runs them from `tests/conformance.rs`, a test without the default harness:
//!
//! ```toml
//! [[test]]
//! name = "conformance"
//! harness = false
//! required-features = ["sim"]
//! ```
//!
//! ```ignore
//! use cc_testkit::{Proxy, Started, Target};
//!
//! fn main() {
//!     let snapshots = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");
//!     cc_testkit::run(Target::new(Vendor::Genesys, CAPS, snapshots, start));
//! }
//!
//! async fn start() -> Result<Started, cc_testkit::BoxError> {
//!     let sim = Sim::start("127.0.0.1:0").await?;           // fresh simulator
//!     let proxy = Proxy::start(sim.addr()).await?;          // faults go here
//!     let config = config_for(proxy.addr());                // client talks to the proxy
//!     let session = connect(config.clone()).await?;         // the adapter's own session
//!     Ok(Started::new(session, Arc::new(sim))
//!         .with_proxy(proxy)
//!         .with_reopen(move || connect(config.clone())))    // same customer, new session
//! }
//! ```
//!
//! [`run`] builds one libtest-mimic trial per scenario, named
//! `<vendor>[-<transport>]::<scenario>`; each trial gets a fresh current-thread runtime,
//! simulator and session. A scenario that needs a feature the target lacks is listed as
//! ignored (its kind says what it needs), and each such missing feature that has a client
//! operation gets a negative trial `…::unsupported_<feature>` checking that both the adapter
//! and the guard return `Error::Unsupported`. After a scenario passes, the frames the
//! simulator recorded are snapshotted (see [`snapshot`]).
//!
//! The scenarios and what each expects are listed in [`scenarios`].

pub mod calls;
mod events;
mod harness;
mod proxy;
mod runner;
pub mod scenarios;
mod sim;
pub mod snapshot;

pub use cc_core::BoxError;
pub use events::{Events, describe, expect_event};
pub use harness::{
    Failure, Harness, LocalBoxFuture, Outcome, ReopenFn, Started, StepExt, Target, check,
    default_chat_request,
};
pub use proxy::{Flow, Proxy};
pub use runner::{PlannedTrial, TrialKind, plan, run, run_all, run_with_args, trials};
pub use scenarios::{SCENARIOS, Scenario};
pub use sim::{
    CallAnswer, Direction, FarEndCall, FarEndWait, Frame, FrameLog, Received, RunningSim, SimChat,
    SimControl, SimEntry, SimStart, StartSimFuture, own_port, wait_notified,
};
pub use snapshot::SnapshotFrames;
