//! A small STUN message codec (RFC 8489) with the TURN attributes (RFC 8656) the relay client
//! needs: building requests and indications with MESSAGE-INTEGRITY (long-term credentials)
//! and FINGERPRINT, and parsing responses and indications.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use md5::Md5;
use sha1::{Digest, Sha1};

/// The magic cookie of every STUN message.
pub(crate) const MAGIC_COOKIE: u32 = 0x2112_a442;
const HEADER_LEN: usize = 20;

/// STUN methods used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Binding,
    Allocate,
    Refresh,
    Send,
    Data,
    CreatePermission,
    Other(u16),
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Binding => 0x001,
            Method::Allocate => 0x003,
            Method::Refresh => 0x004,
            Method::Send => 0x006,
            Method::Data => 0x007,
            Method::CreatePermission => 0x008,
            Method::Other(m) => m,
        }
    }

    fn from_code(code: u16) -> Self {
        match code {
            0x001 => Method::Binding,
            0x003 => Method::Allocate,
            0x004 => Method::Refresh,
            0x006 => Method::Send,
            0x007 => Method::Data,
            0x008 => Method::CreatePermission,
            m => Method::Other(m),
        }
    }
}

/// STUN message classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

fn message_type(method: Method, class: Class) -> u16 {
    let m = method.code();
    ((m & 0x0f80) << 2) | ((m & 0x0070) << 1) | (m & 0x000f) | class.bits()
}

fn split_type(t: u16) -> (Method, Class) {
    let class = match t & 0x0110 {
        0x000 => Class::Request,
        0x010 => Class::Indication,
        0x100 => Class::Success,
        _ => Class::Error,
    };
    let m = (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2);
    (Method::from_code(m), class)
}

/// Attribute types.
pub(crate) mod attr {
    pub(crate) const MAPPED_ADDRESS: u16 = 0x0001;
    pub(crate) const USERNAME: u16 = 0x0006;
    pub(crate) const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub(crate) const ERROR_CODE: u16 = 0x0009;
    pub(crate) const LIFETIME: u16 = 0x000d;
    pub(crate) const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub(crate) const DATA: u16 = 0x0013;
    pub(crate) const REALM: u16 = 0x0014;
    pub(crate) const NONCE: u16 = 0x0015;
    pub(crate) const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub(crate) const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub(crate) const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub(crate) const SOFTWARE: u16 = 0x8022;
    pub(crate) const FINGERPRINT: u16 = 0x8028;
}

/// A transaction id.
pub(crate) type TransId = [u8; 12];

/// A fresh random transaction id.
pub(crate) fn new_trans_id() -> TransId {
    let mut id = [0u8; 12];
    for b in &mut id {
        *b = fastrand::u8(..);
    }
    id
}

/// The long-term credential key: MD5(username ":" realm ":" password).
pub(crate) fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let digest = Md5::digest(format!("{username}:{realm}:{password}").as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest);
    key
}

/// Builds one STUN message.
pub(crate) struct MessageBuilder {
    buf: Vec<u8>,
}

impl MessageBuilder {
    /// A message of `method` and `class` with transaction id `id`.
    pub(crate) fn new(method: Method, class: Class, id: TransId) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&id);
        MessageBuilder { buf }
    }

    fn id(&self) -> TransId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.buf[8..20]);
        id
    }

    fn set_len(&mut self, len: usize) {
        let len = (len as u16).to_be_bytes();
        self.buf[2..4].copy_from_slice(&len);
    }

    /// Adds a raw attribute (padded to four bytes).
    pub(crate) fn attr(mut self, typ: u16, value: &[u8]) -> Self {
        self.buf.extend_from_slice(&typ.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        let len = self.buf.len() - HEADER_LEN;
        self.set_len(len);
        self
    }

    /// Adds a string attribute.
    pub(crate) fn text(self, typ: u16, value: &str) -> Self {
        self.attr(typ, value.as_bytes())
    }

    /// Adds a 32-bit attribute.
    pub(crate) fn u32(self, typ: u16, value: u32) -> Self {
        self.attr(typ, &value.to_be_bytes())
    }

    /// Adds an XOR'd address attribute.
    pub(crate) fn xor_addr(self, typ: u16, addr: SocketAddr) -> Self {
        let value = xor_address(addr, &self.id());
        self.attr(typ, &value)
    }

    /// Adds MESSAGE-INTEGRITY keyed with `key`.
    pub(crate) fn integrity(mut self, key: &[u8]) -> Self {
        let len = self.buf.len() - HEADER_LEN + 24;
        self.set_len(len);
        let mac = hmac_sha1(key, &self.buf);
        self.attr(attr::MESSAGE_INTEGRITY, &mac)
    }

    /// Adds FINGERPRINT and returns the bytes.
    pub(crate) fn fingerprint(mut self) -> Vec<u8> {
        let len = self.buf.len() - HEADER_LEN + 8;
        self.set_len(len);
        let crc = crc32(&self.buf) ^ 0x5354_554e;
        self.u32(attr::FINGERPRINT, crc).buf
    }

    /// The bytes, without a fingerprint.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A parsed STUN message; attribute values borrow from the datagram.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub(crate) method: Method,
    pub(crate) class: Class,
    pub(crate) id: TransId,
    raw: &'a [u8],
    attrs: Vec<(u16, usize, &'a [u8])>,
}

/// Whether `data` looks like a STUN message (first two bits zero, magic cookie).
pub(crate) fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN
        && data[0] & 0xc0 == 0
        && u32::from_be_bytes([data[4], data[5], data[6], data[7]]) == MAGIC_COOKIE
}

impl<'a> Message<'a> {
    /// Parses a datagram; `None` if it is not a well-formed STUN message.
    pub(crate) fn parse(data: &'a [u8]) -> Option<Self> {
        if !is_stun(data) {
            return None;
        }
        let typ = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        if !len.is_multiple_of(4) || data.len() < HEADER_LEN + len {
            return None;
        }
        let raw = &data[..HEADER_LEN + len];
        let (method, class) = split_type(typ);
        let mut id = [0u8; 12];
        id.copy_from_slice(&raw[8..20]);
        let mut attrs = Vec::new();
        let mut pos = HEADER_LEN;
        while pos + 4 <= raw.len() {
            let t = u16::from_be_bytes([raw[pos], raw[pos + 1]]);
            let l = u16::from_be_bytes([raw[pos + 2], raw[pos + 3]]) as usize;
            let start = pos + 4;
            if start + l > raw.len() {
                return None;
            }
            attrs.push((t, pos, &raw[start..start + l]));
            pos = start + l.div_ceil(4) * 4;
        }
        Some(Message {
            method,
            class,
            id,
            raw,
            attrs,
        })
    }

    /// The first value of attribute `typ`.
    pub(crate) fn get(&self, typ: u16) -> Option<&'a [u8]> {
        self.attrs
            .iter()
            .find(|(t, _, _)| *t == typ)
            .map(|(_, _, v)| *v)
    }

    /// A string attribute.
    pub(crate) fn text(&self, typ: u16) -> Option<&'a str> {
        self.get(typ).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// A 32-bit attribute.
    pub(crate) fn u32(&self, typ: u16) -> Option<u32> {
        let v = self.get(typ)?;
        Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    }

    /// An XOR'd address attribute.
    pub(crate) fn xor_addr(&self, typ: u16) -> Option<SocketAddr> {
        parse_xor_address(self.get(typ)?, &self.id)
    }

    /// XOR-MAPPED-ADDRESS, or the old MAPPED-ADDRESS.
    pub(crate) fn mapped_addr(&self) -> Option<SocketAddr> {
        self.xor_addr(attr::XOR_MAPPED_ADDRESS)
            .or_else(|| parse_address(self.get(attr::MAPPED_ADDRESS)?))
    }

    /// ERROR-CODE as (code, reason).
    pub(crate) fn error(&self) -> Option<(u16, &'a str)> {
        let v = self.get(attr::ERROR_CODE)?;
        if v.len() < 4 {
            return None;
        }
        let code = u16::from(v[2] & 0x07) * 100 + u16::from(v[3]);
        Some((code, std::str::from_utf8(&v[4..]).unwrap_or("")))
    }

    /// Checks MESSAGE-INTEGRITY with `key`; false when absent or wrong.
    pub(crate) fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some((_, pos, value)) = self
            .attrs
            .iter()
            .find(|(t, _, _)| *t == attr::MESSAGE_INTEGRITY)
        else {
            return false;
        };
        let mut covered = self.raw[..*pos].to_vec();
        let len = (*pos - HEADER_LEN + 24) as u16;
        covered[2..4].copy_from_slice(&len.to_be_bytes());
        hmac_sha1(key, &covered).as_slice() == *value
    }

    /// Checks FINGERPRINT; true when absent.
    pub(crate) fn verify_fingerprint(&self) -> bool {
        let Some((_, pos, value)) = self.attrs.iter().find(|(t, _, _)| *t == attr::FINGERPRINT)
        else {
            return true;
        };
        let mut covered = self.raw[..*pos].to_vec();
        let len = (*pos - HEADER_LEN + 8) as u16;
        covered[2..4].copy_from_slice(&len.to_be_bytes());
        (crc32(&covered) ^ 0x5354_554e).to_be_bytes().as_slice() == *value
    }
}

fn xor_address(addr: SocketAddr, id: &TransId) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut out = vec![0u8];
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(0x01);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
        }
        IpAddr::V6(ip) => {
            out.push(0x02);
            out.extend_from_slice(&port.to_be_bytes());
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(id);
            out.extend(ip.octets().iter().zip(mask).map(|(a, b)| a ^ b));
        }
    }
    out
}

fn parse_xor_address(v: &[u8], id: &TransId) -> Option<SocketAddr> {
    if v.len() < 8 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match v[1] {
        0x01 => {
            let ip = u32::from_be_bytes(v[4..8].try_into().ok()?) ^ MAGIC_COOKIE;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        0x02 if v.len() >= 20 => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(id);
            let mut octets = [0u8; 16];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = v[4 + i] ^ mask[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => None,
    }
}

fn parse_address(v: &[u8]) -> Option<SocketAddr> {
    if v.len() < 8 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]);
    match v[1] {
        0x01 => {
            let ip: [u8; 4] = v[4..8].try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        0x02 if v.len() >= 20 => {
            let ip: [u8; 16] = v[4..20].try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

/// HMAC-SHA1 (RFC 2104).
pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let inner = inner.finalize();
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut out = [0u8; 20];
    out.copy_from_slice(&outer.finalize());
    out
}

/// CRC-32 (ISO-HDLC, as in zlib), bit by bit: STUN messages are small.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn crc32_and_hmac_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        // RFC 2202 test case 2.
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.to_vec(),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
    }

    #[test]
    fn rfc5769_sample_request_verifies() {
        // RFC 5769 section 2.1, short-term password "VOkJxbRl1RmTxUk/WvJxBt".
        let msg = hex("0001 0058 2112a442 b7e7a701bc34d686fa87dfae
             8022 0010 5354554e 20746573 7420636c 69656e74
             0024 0004 6e0001ff
             8029 0008 932ff9b1 51263b36
             0006 0009 6576746a 3a683676 59202020
             0008 0014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
             8028 0004 e57a3bcf");
        let m = Message::parse(&msg).unwrap();
        assert_eq!((m.method, m.class), (Method::Binding, Class::Request));
        assert_eq!(m.text(attr::USERNAME), Some("evtj:h6vY"));
        assert!(m.verify_fingerprint());
        assert!(m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!m.verify_integrity(b"wrong"));
    }

    #[test]
    fn rfc5769_ipv4_response_gives_the_mapped_address() {
        // The header and XOR-MAPPED-ADDRESS of RFC 5769 section 2.2 (the integrity is not
        // checked here: the request vector above covers it).
        let msg = hex("0101 003c 2112a442 b7e7a701bc34d686fa87dfae
             8022 000b 74657374 20766563 746f7220
             0020 0008 0001a147 e112a643
             0008 0014 2b91f599 fd9e9011 1da47da6 1e1d4c8c 2d3daebf
             8028 0004 c07d4c96");
        let m = Message::parse(&msg).unwrap();
        assert_eq!((m.method, m.class), (Method::Binding, Class::Success));
        assert_eq!(m.mapped_addr(), Some("192.0.2.1:32853".parse().unwrap()));
    }

    #[test]
    fn built_messages_parse_back() {
        let id = new_trans_id();
        let key = long_term_key("user", "realm", "pass");
        let peer: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        let bytes = MessageBuilder::new(Method::CreatePermission, Class::Request, id)
            .xor_addr(attr::XOR_PEER_ADDRESS, peer)
            .text(attr::USERNAME, "user")
            .text(attr::REALM, "realm")
            .text(attr::NONCE, "abc")
            .integrity(&key)
            .fingerprint();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(
            (m.method, m.class, m.id),
            (Method::CreatePermission, Class::Request, id)
        );
        assert_eq!(m.xor_addr(attr::XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(m.text(attr::NONCE), Some("abc"));
        assert!(m.verify_integrity(&key));
        assert!(m.verify_fingerprint());

        let err = MessageBuilder::new(Method::Allocate, Class::Error, id)
            .attr(attr::ERROR_CODE, &[0, 0, 4, 1, b'U', b'n'])
            .finish();
        let m = Message::parse(&err).unwrap();
        assert_eq!(m.class, Class::Error);
        assert_eq!(m.error(), Some((401, "Un")));
        assert_eq!(m.u32(attr::LIFETIME), None);

        assert!(Message::parse(b"not stun at all, no").is_none());
        assert!(Message::parse(&bytes[..bytes.len() - 3]).is_none());
    }

    #[test]
    fn long_term_key_is_md5_of_the_triple() {
        // MD5("user:realm:pass").
        assert_eq!(
            long_term_key("user", "realm", "pass").to_vec(),
            hex("8493fbc53ba582fb4c044c456bdc40eb")
        );
    }
}
