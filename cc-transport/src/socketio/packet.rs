//! The Engine.IO v4 and Socket.IO v5 packet codec (sans-IO, text packets only).
//!
//! An Engine.IO packet over WebSocket is one text frame: a type digit (`0` open, `1` close,
//! `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop) followed by its data. A Socket.IO
//! packet travels inside an Engine.IO `4` message: a type digit (`0` CONNECT, `1` DISCONNECT,
//! `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK), for binary
//! packets the attachment count and `-`, then an optional namespace (`/chat,`), an optional
//! ack id (decimal), and an optional JSON payload.
//!
//! ```
//! use cc_transport::socketio::{EioPacket, SioKind, SioPacket};
//! let eio = EioPacket::decode(r#"42["hello",{"a":1}]"#).unwrap();
//! let EioPacket::Message(body) = eio else { panic!() };
//! let sio = SioPacket::decode(&body).unwrap();
//! assert_eq!(sio.kind, SioKind::Event);
//! assert_eq!(sio.event_name(), Some("hello"));
//! assert_eq!(SioPacket::event("/", Some(7), "x", &[]).encode(), r#"27["x"]"#);
//! ```

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Why a packet could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketError(pub String);

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PacketError {}

fn err(msg: impl Into<String>) -> PacketError {
    PacketError(msg.into())
}

/// The Engine.IO handshake data of an `open` packet.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInfo {
    /// The Engine.IO session id.
    pub sid: String,
    /// Transports the server offers to upgrade to.
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// How often the server pings, in milliseconds.
    pub ping_interval: u64,
    /// How long the server waits for the pong, in milliseconds.
    pub ping_timeout: u64,
    /// The largest payload the server accepts, in bytes.
    #[serde(default)]
    pub max_payload: Option<u64>,
}

impl OpenInfo {
    /// How long without any packet from the server before the connection counts as dead:
    /// `pingInterval + pingTimeout`, as the reference client computes it.
    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.ping_interval.saturating_add(self.ping_timeout))
    }
}

/// One Engine.IO v4 packet (text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EioPacket {
    /// `0`: the handshake.
    Open(OpenInfo),
    /// `1`: the transport closes.
    Close,
    /// `2`: a ping (server to client in v4), with optional data (`probe`).
    Ping(String),
    /// `3`: a pong, with optional data.
    Pong(String),
    /// `4`: a message: a Socket.IO packet.
    Message(String),
    /// `5`: upgrade (polling to websocket only).
    Upgrade,
    /// `6`: noop.
    Noop,
}

impl EioPacket {
    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<EioPacket, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or_else(|| err("empty Engine.IO packet"))?;
        let rest = chars.as_str();
        Ok(match kind {
            '0' => EioPacket::Open(
                serde_json::from_str(rest)
                    .map_err(|e| err(format!("Engine.IO open packet: {e}")))?,
            ),
            '1' => EioPacket::Close,
            '2' => EioPacket::Ping(rest.to_owned()),
            '3' => EioPacket::Pong(rest.to_owned()),
            '4' => EioPacket::Message(rest.to_owned()),
            '5' => EioPacket::Upgrade,
            '6' => EioPacket::Noop,
            other => return Err(err(format!("unknown Engine.IO packet type {other:?}"))),
        })
    }

    /// Encodes as one text frame. An `Open` packet is only ever sent by servers and encodes
    /// as its type digit alone.
    pub fn encode(&self) -> String {
        match self {
            EioPacket::Open(_) => "0".to_owned(),
            EioPacket::Close => "1".to_owned(),
            EioPacket::Ping(d) => format!("2{d}"),
            EioPacket::Pong(d) => format!("3{d}"),
            EioPacket::Message(m) => format!("4{m}"),
            EioPacket::Upgrade => "5".to_owned(),
            EioPacket::Noop => "6".to_owned(),
        }
    }
}

/// The type of a Socket.IO v5 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SioKind {
    /// `0` CONNECT (client: with the auth payload; server: with `{sid}`).
    Connect,
    /// `1` DISCONNECT.
    Disconnect,
    /// `2` EVENT.
    Event,
    /// `3` ACK.
    Ack,
    /// `4` CONNECT_ERROR.
    ConnectError,
    /// `5` BINARY_EVENT (not supported: it needs binary attachments).
    BinaryEvent,
    /// `6` BINARY_ACK (not supported).
    BinaryAck,
}

impl SioKind {
    fn digit(self) -> char {
        match self {
            SioKind::Connect => '0',
            SioKind::Disconnect => '1',
            SioKind::Event => '2',
            SioKind::Ack => '3',
            SioKind::ConnectError => '4',
            SioKind::BinaryEvent => '5',
            SioKind::BinaryAck => '6',
        }
    }
}

/// One Socket.IO v5 packet.
#[derive(Clone, Debug, PartialEq)]
pub struct SioPacket {
    /// The type.
    pub kind: SioKind,
    /// The namespace, `/` by default.
    pub namespace: String,
    /// The ack id: on an EVENT, the sender wants an ACK with this id.
    pub id: Option<u64>,
    /// Attachments announced by a binary packet.
    pub attachments: u32,
    /// The JSON payload.
    pub data: Option<Value>,
}

impl SioPacket {
    /// A CONNECT to `namespace`, with the auth payload.
    pub fn connect(namespace: &str, auth: Option<Value>) -> SioPacket {
        SioPacket {
            kind: SioKind::Connect,
            namespace: namespace.to_owned(),
            id: None,
            attachments: 0,
            data: auth,
        }
    }

    /// A DISCONNECT from `namespace`.
    pub fn disconnect(namespace: &str) -> SioPacket {
        SioPacket {
            kind: SioKind::Disconnect,
            namespace: namespace.to_owned(),
            id: None,
            attachments: 0,
            data: None,
        }
    }

    /// An EVENT `[name, ...args]`, asking for an ack when `id` is set.
    pub fn event(namespace: &str, id: Option<u64>, name: &str, args: &[Value]) -> SioPacket {
        let mut array = Vec::with_capacity(args.len() + 1);
        array.push(Value::String(name.to_owned()));
        array.extend(args.iter().cloned());
        SioPacket {
            kind: SioKind::Event,
            namespace: namespace.to_owned(),
            id,
            attachments: 0,
            data: Some(Value::Array(array)),
        }
    }

    /// An ACK with id `id` and `args`.
    pub fn ack(namespace: &str, id: u64, args: &[Value]) -> SioPacket {
        SioPacket {
            kind: SioKind::Ack,
            namespace: namespace.to_owned(),
            id: Some(id),
            attachments: 0,
            data: Some(Value::Array(args.to_vec())),
        }
    }

    /// The event name of an EVENT packet.
    pub fn event_name(&self) -> Option<&str> {
        match (&self.kind, &self.data) {
            (SioKind::Event | SioKind::BinaryEvent, Some(Value::Array(a))) => a.first()?.as_str(),
            _ => None,
        }
    }

    /// The arguments of an EVENT (after the name) or an ACK.
    pub fn args(&self) -> Vec<Value> {
        match (&self.kind, &self.data) {
            (SioKind::Event | SioKind::BinaryEvent, Some(Value::Array(a))) => {
                a.iter().skip(1).cloned().collect()
            }
            (SioKind::Ack | SioKind::BinaryAck, Some(Value::Array(a))) => a.clone(),
            _ => Vec::new(),
        }
    }

    /// Decodes the body of an Engine.IO message. EVENT payloads must be a non-empty array
    /// starting with a string name, ACK payloads an array, CONNECT payloads an object.
    pub fn decode(text: &str) -> Result<SioPacket, PacketError> {
        let bytes = text.as_bytes();
        let kind = match bytes.first() {
            None => return Err(err("empty Socket.IO packet")),
            Some(b'0') => SioKind::Connect,
            Some(b'1') => SioKind::Disconnect,
            Some(b'2') => SioKind::Event,
            Some(b'3') => SioKind::Ack,
            Some(b'4') => SioKind::ConnectError,
            Some(b'5') => SioKind::BinaryEvent,
            Some(b'6') => SioKind::BinaryAck,
            Some(_) => {
                let c = text.chars().next().unwrap_or_default();
                return Err(err(format!("unknown Socket.IO packet type {c:?}")));
            }
        };
        let mut i = 1;
        let mut attachments = 0u32;
        if matches!(kind, SioKind::BinaryEvent | SioKind::BinaryAck) {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start || bytes.get(i) != Some(&b'-') {
                return Err(err("binary Socket.IO packet without attachment count"));
            }
            attachments = text[start..i]
                .parse()
                .map_err(|_| err("attachment count out of range"))?;
            i += 1;
        }
        let mut namespace = "/".to_owned();
        if bytes.get(i) == Some(&b'/') {
            let end = text[i..].find(',').map_or(text.len(), |p| i + p);
            namespace = text[i..end].to_owned();
            i = (end + 1).min(text.len());
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let id = if i > start {
            Some(
                text[start..i]
                    .parse::<u64>()
                    .map_err(|_| err("ack id out of range"))?,
            )
        } else {
            None
        };
        let rest = &text[i..];
        let data = if rest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Value>(rest)
                    .map_err(|e| err(format!("Socket.IO payload is not JSON: {e}")))?,
            )
        };
        let packet = SioPacket {
            kind,
            namespace,
            id,
            attachments,
            data,
        };
        packet.validate()?;
        Ok(packet)
    }

    fn validate(&self) -> Result<(), PacketError> {
        match self.kind {
            SioKind::Event | SioKind::BinaryEvent => match &self.data {
                Some(Value::Array(a)) if a.first().is_some_and(Value::is_string) => Ok(()),
                _ => Err(err(
                    "EVENT payload must be an array starting with the event name",
                )),
            },
            SioKind::Ack | SioKind::BinaryAck => match (&self.data, self.id) {
                (Some(Value::Array(_)), Some(_)) => Ok(()),
                (_, None) => Err(err("ACK without an id")),
                _ => Err(err("ACK payload must be an array")),
            },
            SioKind::Connect => match &self.data {
                None | Some(Value::Object(_)) => Ok(()),
                _ => Err(err("CONNECT payload must be an object")),
            },
            SioKind::Disconnect | SioKind::ConnectError => Ok(()),
        }
    }

    /// Encodes as the body of an Engine.IO message (without the leading `4`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        out.push(self.kind.digit());
        if matches!(self.kind, SioKind::BinaryEvent | SioKind::BinaryAck) {
            out.push_str(&self.attachments.to_string());
            out.push('-');
        }
        if self.namespace != "/" && !self.namespace.is_empty() {
            out.push_str(&self.namespace);
            out.push(',');
        }
        if let Some(id) = self.id {
            out.push_str(&id.to_string());
        }
        if let Some(data) = &self.data {
            out.push_str(&data.to_string());
        }
        out
    }

    /// Encodes as a whole Engine.IO message frame (`4` + packet).
    pub fn to_frame(&self) -> String {
        format!("4{}", self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn open_packet() {
        let p = EioPacket::decode(
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        )
        .unwrap();
        let EioPacket::Open(o) = p else { panic!() };
        assert_eq!(o.sid, "abc");
        assert_eq!(o.dead_after(), Duration::from_secs(45));
        assert!(EioPacket::decode("0{}").is_err());
        assert!(EioPacket::decode("").is_err());
        assert!(EioPacket::decode("9").is_err());
        assert_eq!(
            EioPacket::decode("2").unwrap(),
            EioPacket::Ping(String::new())
        );
        assert_eq!(EioPacket::Pong("probe".into()).encode(), "3probe");
    }

    #[test]
    fn socketio_packets() {
        let c = SioPacket::decode(r#"0{"sid":"x"}"#).unwrap();
        assert_eq!(c.kind, SioKind::Connect);
        assert_eq!(c.namespace, "/");
        let e = SioPacket::decode(r#"2/admin,12["ev",1,"two"]"#).unwrap();
        assert_eq!(e.namespace, "/admin");
        assert_eq!(e.id, Some(12));
        assert_eq!(e.event_name(), Some("ev"));
        assert_eq!(e.args(), vec![json!(1), json!("two")]);
        assert_eq!(e.encode(), r#"2/admin,12["ev",1,"two"]"#);
        let a = SioPacket::decode(r#"35[{"code":200}]"#).unwrap();
        assert_eq!((a.kind, a.id), (SioKind::Ack, Some(5)));
        let b = SioPacket::decode(r#"51-["f",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(b.attachments, 1);
        assert_eq!(SioPacket::decode("1").unwrap().kind, SioKind::Disconnect);
        assert!(SioPacket::decode("2{}").is_err());
        assert!(SioPacket::decode("3[1]").is_err());
        assert!(SioPacket::decode("2[1]").is_err());
        assert!(SioPacket::decode("0[]").is_err());
        assert!(SioPacket::decode("5[\"x\"]").is_err());
        assert_eq!(
            SioPacket::connect("/", Some(json!({"a":"b"}))).to_frame(),
            r#"40{"a":"b"}"#
        );
        assert_eq!(
            SioPacket::ack("/", 3, &[json!("ok")]).encode(),
            r#"33["ok"]"#
        );
    }
}
