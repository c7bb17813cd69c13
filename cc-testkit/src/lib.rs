//! Test kit for cc adapters: the [`SimControl`] trait simulators implement.

mod sim;

pub use sim::{Direction, Frame, Received, SimChat, SimControl};
