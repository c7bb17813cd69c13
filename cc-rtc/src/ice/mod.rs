//! Candidate gathering for the media engine: server-reflexive addresses from STUN servers and
//! relayed addresses from TURN servers. str0m runs ICE itself but leaves gathering to us.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use cc_core::{Error, Feature, Result, Vendor};
use tokio::net::UdpSocket;

use crate::media::MediaConfig;

/// What gathering found.
pub(crate) struct Gathered {
    /// Server-reflexive addresses.
    pub(crate) reflexive: Vec<SocketAddr>,
    /// TURN allocations.
    pub(crate) relays: Vec<TurnRelay>,
}

/// Asks the configured servers for reflexive and relayed addresses.
pub(crate) fn gather(
    vendor: Vendor,
    _socket: &UdpSocket,
    config: &MediaConfig,
) -> Result<Gathered> {
    if !config.ice_servers.is_empty() {
        return Err(Error::unsupported(vendor, Feature::CallsAudio));
    }
    Ok(Gathered {
        reflexive: Vec::new(),
        relays: Vec::new(),
    })
}

/// A TURN allocation (none can exist yet).
pub(crate) enum TurnRelay {}

impl TurnRelay {
    pub(crate) fn relayed_addr(&self) -> SocketAddr {
        match *self {}
    }
    pub(crate) fn server(&self) -> SocketAddr {
        match *self {}
    }
    pub(crate) fn permit(&mut self, _ip: IpAddr, _now: Instant) {
        match *self {}
    }
    pub(crate) fn handle_incoming(
        &mut self,
        _data: &[u8],
        _now: Instant,
        _out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        match *self {}
    }
    pub(crate) fn send_to(
        &mut self,
        _to: SocketAddr,
        _data: &[u8],
        _now: Instant,
        _out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        match *self {}
    }
    pub(crate) fn on_timeout(&mut self, _now: Instant, _out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        match *self {}
    }
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match *self {}
    }
    pub(crate) fn release(&mut self, _now: Instant, _out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        match *self {}
    }
}
