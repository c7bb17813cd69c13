#![doc = include_str!("docs.md")]

pub mod config;
pub mod engine;
pub mod error;
pub mod wire;

pub use config::{GenesysConfig, RoutingConfig, Transport};
#[cfg(feature = "sim")]
pub mod sim;
