//! Audio/video signalling (§3.8): JSON app messages with a `type`, carried inside the chat
//! (`SendAppMessage` / `OnAppMessageReceived` over DWR, free app-message frames over the chat
//! proxy).
//!
//! VERIFIED type names and fields: `requestav {param}`, `avtstatus {param}`, `devinfo {info}`,
//! `configs {…}`, `callqueued {avtype}`, `agt1stconnect {avtype}`, `avcontrol {value}`,
//! `endav {reason}`, `bye`, `onend`, SDP `{type: "offer"|"answer", sdp}`, ICE
//! `{type: "candidate", id, sdpMLineIndex, candidate}` (also `sdpMid`, `label`). The layout of
//! the ICE server lists inside `configs` is PROPOSED (see [`AvConfigs`]), as are the `endav`
//! reasons the simulator gives for a busy or unanswered CSO (see [`EndKind`]).

use cc_core::Secret;
use serde_json::{Map, Value, json};

/// `avmode` / `avtstatus.param` / `requestav.param`: what kind of call.
pub const AVMODE_AUDIO: &str = "audio";
/// Video with voice.
pub const AVMODE_VIDEO: &str = "video";
/// No audio/video (refused, or the call ended).
pub const AVMODE_OFF: &str = "false";

/// The `endav` reason the client sends when the customer hangs up (a mobile end type, §2.5).
pub const END_COMMON: &str = "COMMON";
/// The `endav` reason for a media failure (§2.5).
pub const END_ERROR: &str = "ERROR";
/// The `endav` reason for lost media connectivity (§2.5).
pub const END_NET_ERROR: &str = "NET_ERROR";

/// One ICE ("AV proxy") server of `configs`, as the browser's `iceServers` entry
/// (`{urls, username, credential}`, §2.3 `SetAvConfigs`).
#[derive(Clone, PartialEq, Eq)]
pub struct AvIceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// The AV-proxy user name (`IceName`).
    pub username: Option<String>,
    /// The AV-proxy credential (`IceId`).
    pub credential: Option<Secret>,
}

impl std::fmt::Debug for AvIceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvIceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential)
            .finish()
    }
}

impl AvIceServer {
    /// Reads one entry: `urls` (string or list) or `url`, `username`, `credential`.
    fn from_value(v: &Value) -> Result<AvIceServer, String> {
        let Value::Object(m) = v else {
            return Err("an ICE server is not an object".to_owned());
        };
        let urls: Vec<String> = match m.get("urls").or_else(|| m.get("url")) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|u| {
                    u.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "an ICE server URL is not a string".to_owned())
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("an ICE server without `urls`".to_owned()),
        };
        if urls.is_empty() {
            return Err("an ICE server with no URL".to_owned());
        }
        if let Some(bad) = urls.iter().find(|u| {
            !["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|p| u.starts_with(p))
        }) {
            return Err(format!("`{bad}` is not a stun:/turn: URL"));
        }
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(AvIceServer {
            urls,
            username: text("username"),
            credential: text("credential").map(Secret::new),
        })
    }

    /// The `iceServers` entry (the credential in clear: this is what goes on the wire).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("urls".into(), json!(self.urls));
        if let Some(u) = &self.username {
            m.insert("username".into(), json!(u));
        }
        if let Some(c) = &self.credential {
            m.insert("credential".into(), json!(c.expose()));
        }
        Value::Object(m)
    }

    /// Whether every URL is a TURN (relay) URL.
    pub fn is_turn(&self) -> bool {
        self.urls
            .iter()
            .all(|u| u.starts_with("turn:") || u.starts_with("turns:"))
    }
}

/// The server-pushed media configuration (`configs`, §3.8).
///
/// PROPOSED layout (the notes list the keys, not their shape): `avmode` (`audio` | `video` |
/// `false`), `media_conn_mode` (`all` | `avproxy` | `peer2peer`), `ice` and `avproxy`: lists of
/// `iceServers` entries (`{urls, username, credential}`; `urls` a string or a list); the other
/// keys (`mirror_selfview`, `detect_gsm`, `sdp_mung`, timeouts) are kept in [`AvConfigs::raw`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvConfigs {
    /// What calls the chat may have: `audio`, `video` (with voice) or `false` (none).
    pub avmode: String,
    /// `all` (default), `avproxy` (relay only) or `peer2peer`.
    pub media_conn_mode: String,
    /// STUN/TURN servers (`ice`).
    pub ice: Vec<AvIceServer>,
    /// The TURN "AV proxy" servers (`avproxy`).
    pub avproxy: Vec<AvIceServer>,
    /// The whole message as received, credentials included (never logged).
    pub raw: Secret,
}

impl AvConfigs {
    fn from_map(m: &Map<String, Value>) -> Result<AvConfigs, String> {
        let list = |k: &str| -> Result<Vec<AvIceServer>, String> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a.iter().map(AvIceServer::from_value).collect(),
                Some(one @ Value::Object(_)) => Ok(vec![AvIceServer::from_value(one)?]),
                Some(_) => Err(format!("`configs.{k}` is not a list of ICE servers")),
            }
        };
        let avmode = match m.get("avmode") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(false)) => AVMODE_OFF.to_owned(),
            None | Some(Value::Null) => AVMODE_VIDEO.to_owned(),
            Some(other) => return Err(format!("`configs.avmode` is {other}")),
        };
        if ![AVMODE_AUDIO, AVMODE_VIDEO, AVMODE_OFF].contains(&avmode.as_str()) {
            return Err(format!(
                "`configs.avmode` is `{avmode}`: expected audio, video or false"
            ));
        }
        Ok(AvConfigs {
            avmode,
            media_conn_mode: m
                .get("media_conn_mode")
                .and_then(Value::as_str)
                .unwrap_or("all")
                .to_owned(),
            ice: list("ice")?,
            avproxy: list("avproxy")?,
            raw: Secret::new(Value::Object(m.clone()).to_string()),
        })
    }

    /// The configuration a server gives when it takes calls of `avmode`, with these servers.
    pub fn new(avmode: &str, ice: Vec<AvIceServer>, avproxy: Vec<AvIceServer>) -> AvConfigs {
        let mut c = AvConfigs {
            avmode: avmode.to_owned(),
            media_conn_mode: "all".to_owned(),
            ice,
            avproxy,
            raw: Secret::new(String::new()),
        };
        c.raw = Secret::new(c.to_value().to_string());
        c
    }

    /// The `configs` message.
    pub fn to_value(&self) -> Value {
        json!({
            "type": "configs",
            "avmode": self.avmode,
            "media_conn_mode": self.media_conn_mode,
            "ice": self.ice.iter().map(AvIceServer::to_value).collect::<Vec<_>>(),
            "avproxy": self.avproxy.iter().map(AvIceServer::to_value).collect::<Vec<_>>(),
            "mirror_selfview": true,
            "detect_gsm": false,
            "sdp_mung": {"enabled": false},
        })
    }

    /// Whether the chat may have a call (`avmode` is not `false`), and a video one.
    pub fn allows(&self, video: bool) -> bool {
        match self.avmode.as_str() {
            AVMODE_VIDEO => true,
            AVMODE_AUDIO => !video,
            _ => false,
        }
    }

    /// The servers the media should use: `ice` and `avproxy`, without TURN servers for
    /// `peer2peer`.
    pub fn servers(&self) -> Vec<AvIceServer> {
        let all = self.ice.iter().chain(self.avproxy.iter()).cloned();
        if self.media_conn_mode == "peer2peer" {
            all.filter(|s| !s.is_turn()).collect()
        } else {
            all.collect()
        }
    }
}

/// One audio/video signalling message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvSignal {
    /// `requestav {param}`: the CSO asks the customer to start (or upgrade to) a call.
    RequestAv {
        /// `audio` or `video`.
        param: String,
    },
    /// `avtstatus {param}`: the customer's call request / state (`audio`, `video`, `false`).
    AvtStatus {
        /// `audio`, `video` or `false`.
        param: String,
    },
    /// `devinfo {info}`: the customer's device, sent before a call.
    DevInfo {
        /// Free-form device information.
        info: Value,
    },
    /// `configs {…}`: the server's media configuration.
    Configs(AvConfigs),
    /// `callqueued {avtype}`: the call waits for the CSO (play hold music): ringing.
    CallQueued {
        /// `audio` or `video`.
        avtype: String,
    },
    /// `agt1stconnect {avtype}`: the CSO took the call (stop hold music).
    Agt1stConnect {
        /// `audio` or `video`.
        avtype: String,
    },
    /// `avcontrol {value}`: the CSO holds (`muteaudio`) or resumes (`unmuteaudio`).
    AvControl {
        /// `muteaudio` or `unmuteaudio`.
        value: String,
    },
    /// `endav {reason}`: the media session ends.
    EndAv {
        /// Why.
        reason: String,
    },
    /// `bye`: the media session ends.
    Bye {
        /// A reason, when given.
        reason: Option<String>,
    },
    /// `onend`: the media session ends.
    OnEnd {
        /// A reason, when given.
        reason: Option<String>,
    },
    /// `{type: "offer", sdp}`.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// `{type: "answer", sdp}`.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// `{type: "candidate", id, sdpMLineIndex, candidate}`: one trickled ICE candidate.
    Candidate {
        /// The media id (`id`, also read from `sdpMid`).
        mid: String,
        /// The m-line index (`sdpMLineIndex`, also read from `label`).
        mline_index: u32,
        /// The `candidate:…` line.
        candidate: String,
    },
}

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn need(m: &Map<String, Value>, k: &str, kind: &str) -> Result<String, String> {
    text(m, k).ok_or_else(|| format!("`{kind}` without `{k}`"))
}

impl AvSignal {
    /// The `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            AvSignal::RequestAv { .. } => "requestav",
            AvSignal::AvtStatus { .. } => "avtstatus",
            AvSignal::DevInfo { .. } => "devinfo",
            AvSignal::Configs(_) => "configs",
            AvSignal::CallQueued { .. } => "callqueued",
            AvSignal::Agt1stConnect { .. } => "agt1stconnect",
            AvSignal::AvControl { .. } => "avcontrol",
            AvSignal::EndAv { .. } => "endav",
            AvSignal::Bye { .. } => "bye",
            AvSignal::OnEnd { .. } => "onend",
            AvSignal::Offer { .. } => "offer",
            AvSignal::Answer { .. } => "answer",
            AvSignal::Candidate { .. } => "candidate",
        }
    }

    /// Decodes an app message. `Ok(None)` when its type is not audio/video signalling;
    /// `Err` names what is wrong with a signalling message.
    pub fn decode(v: &Value) -> Result<Option<AvSignal>, String> {
        let Value::Object(m) = v else {
            return Ok(None);
        };
        let Some(kind) = m.get("type").and_then(Value::as_str) else {
            return Ok(None);
        };
        let opt = |k: &str| text(m, k).filter(|s| !s.is_empty());
        Ok(Some(match kind {
            "requestav" => AvSignal::RequestAv {
                param: need(m, "param", kind)?,
            },
            "avtstatus" => AvSignal::AvtStatus {
                param: need(m, "param", kind)?,
            },
            "devinfo" => AvSignal::DevInfo {
                info: m.get("info").cloned().unwrap_or(Value::Null),
            },
            "configs" => AvSignal::Configs(AvConfigs::from_map(m)?),
            "callqueued" => AvSignal::CallQueued {
                avtype: opt("avtype").unwrap_or_default(),
            },
            "agt1stconnect" => AvSignal::Agt1stConnect {
                avtype: opt("avtype").unwrap_or_default(),
            },
            "avcontrol" => AvSignal::AvControl {
                value: need(m, "value", kind)?,
            },
            "endav" => AvSignal::EndAv {
                reason: opt("reason").unwrap_or_default(),
            },
            "bye" => AvSignal::Bye {
                reason: opt("reason"),
            },
            "onend" => AvSignal::OnEnd {
                reason: opt("reason"),
            },
            "offer" => AvSignal::Offer {
                sdp: need(m, "sdp", kind)?,
            },
            "answer" => AvSignal::Answer {
                sdp: need(m, "sdp", kind)?,
            },
            "candidate" => {
                let candidate = need(m, "candidate", kind)?;
                let candidate = candidate
                    .strip_prefix("a=")
                    .map(str::to_owned)
                    .unwrap_or(candidate);
                if !candidate.starts_with("candidate:") {
                    return Err("`candidate` is not a `candidate:` line".to_owned());
                }
                let index = m.get("sdpMLineIndex").or_else(|| m.get("label"));
                let mline_index = match index {
                    None | Some(Value::Null) => 0,
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or("`candidate` with a bad `sdpMLineIndex`")?,
                    Some(Value::String(s)) => s
                        .parse()
                        .map_err(|_| "`candidate` with a bad `sdpMLineIndex`")?,
                    Some(_) => return Err("`candidate` with a bad `sdpMLineIndex`".to_owned()),
                };
                AvSignal::Candidate {
                    mid: opt("id").or_else(|| opt("sdpMid")).unwrap_or_default(),
                    mline_index,
                    candidate,
                }
            }
            _ => return Ok(None),
        }))
    }

    /// The app-message JSON.
    pub fn to_value(&self) -> Value {
        let kind = self.kind();
        match self {
            AvSignal::RequestAv { param } | AvSignal::AvtStatus { param } => {
                json!({"type": kind, "param": param})
            }
            AvSignal::DevInfo { info } => json!({"type": kind, "info": info}),
            AvSignal::Configs(c) => c.to_value(),
            AvSignal::CallQueued { avtype } | AvSignal::Agt1stConnect { avtype } => {
                json!({"type": kind, "avtype": avtype})
            }
            AvSignal::AvControl { value } => json!({"type": kind, "value": value}),
            AvSignal::EndAv { reason } => json!({"type": kind, "reason": reason}),
            AvSignal::Bye { reason } | AvSignal::OnEnd { reason } => match reason {
                Some(r) => json!({"type": kind, "reason": r}),
                None => json!({"type": kind}),
            },
            AvSignal::Offer { sdp } | AvSignal::Answer { sdp } => {
                json!({"type": kind, "sdp": sdp})
            }
            AvSignal::Candidate {
                mid,
                mline_index,
                candidate,
            } => json!({
                "type": kind,
                "id": mid,
                "sdpMLineIndex": mline_index,
                "candidate": candidate,
            }),
        }
    }
}

/// The message with every `credential` (AV-proxy passwords in `configs`) replaced by
/// `[REDACTED]`, for events and logs.
pub fn redact(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "credential" {
                        *x = Value::String("[REDACTED]".to_owned());
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// How a call that ends with `endav` / `bye` / `onend` ended, from the CSO side's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndKind {
    /// The CSO is busy (PROPOSED reasons `AgentBusy`, `Busy`, `USER_BUSY`).
    Busy,
    /// Nobody took the call in time (PROPOSED `NoAnswer`, `NO_ANSWER`, `TimedOutInQueue`,
    /// `Timeout`).
    NoAnswer,
    /// The CSO declined (PROPOSED `Rejected`, `Declined`, `AgentRejected`).
    Rejected,
    /// A media or network failure (§2.5 end types `ERROR`, `NET_ERROR`).
    Failed,
    /// A normal end (anything else: `COMMON`, `EXT_CALL`, free text).
    Normal,
}

impl EndKind {
    /// Classifies an end reason (case-insensitive).
    pub fn of(reason: &str) -> EndKind {
        let r = reason.to_ascii_lowercase().replace(['_', '-', ' '], "");
        match r.as_str() {
            "agentbusy" | "busy" | "userbusy" => EndKind::Busy,
            "noanswer" | "agentnoanswer" | "timedoutinqueue" | "timeout" => EndKind::NoAnswer,
            "rejected" | "declined" | "agentrejected" => EndKind::Rejected,
            "error" | "neterror" => EndKind::Failed,
            _ => EndKind::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip() {
        let ice = AvIceServer {
            urls: vec!["turn:avproxy.example:3579".into()],
            username: Some("u".into()),
            credential: Some(Secret::new("pw")),
        };
        for s in [
            AvSignal::RequestAv {
                param: "video".into(),
            },
            AvSignal::AvtStatus {
                param: "audio".into(),
            },
            AvSignal::DevInfo {
                info: json!({"lib": "web"}),
            },
            AvSignal::Configs(AvConfigs::new("audio", vec![], vec![ice])),
            AvSignal::CallQueued {
                avtype: "audio".into(),
            },
            AvSignal::Agt1stConnect {
                avtype: "audio".into(),
            },
            AvSignal::AvControl {
                value: "muteaudio".into(),
            },
            AvSignal::EndAv {
                reason: "COMMON".into(),
            },
            AvSignal::Bye { reason: None },
            AvSignal::OnEnd {
                reason: Some("x".into()),
            },
            AvSignal::Offer { sdp: "v=0".into() },
            AvSignal::Answer { sdp: "v=0".into() },
            AvSignal::Candidate {
                mid: "0".into(),
                mline_index: 0,
                candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            },
        ] {
            let v = s.to_value();
            assert_eq!(AvSignal::decode(&v).unwrap(), Some(s.clone()), "{v}");
        }
    }

    #[test]
    fn tolerant_and_strict_where_it_matters() {
        // Not signalling.
        assert_eq!(AvSignal::decode(&json!({"type": "survey"})).unwrap(), None);
        assert_eq!(AvSignal::decode(&json!("text")).unwrap(), None);
        // Browser-style candidate with sdpMid/label and an `a=` prefix.
        let c = AvSignal::decode(&json!({"type":"candidate","sdpMid":"audio","label":"1",
            "candidate":"a=candidate:1 1 udp 1 10.0.0.1 9 typ host"}))
        .unwrap()
        .unwrap();
        assert_eq!(
            c,
            AvSignal::Candidate {
                mid: "audio".into(),
                mline_index: 1,
                candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host".into()
            }
        );
        let e = AvSignal::decode(&json!({"type":"offer"})).unwrap_err();
        assert!(e.contains("sdp"), "{e}");
        let e = AvSignal::decode(&json!({"type":"candidate","candidate":"x"})).unwrap_err();
        assert!(e.contains("candidate:"), "{e}");
        // configs: a single url string, avmode false, peer2peer drops TURN.
        let c = AvSignal::decode(&json!({"type":"configs","avmode":"false",
            "media_conn_mode":"peer2peer",
            "ice":[{"url":"stun:stun.example:3478"}],
            "avproxy":{"urls":["turn:a:3579","turn:a:3585"],"username":"n","credential":"id"}}))
        .unwrap()
        .unwrap();
        let AvSignal::Configs(c) = c else {
            panic!("configs")
        };
        assert!(!c.allows(false));
        assert_eq!(c.avproxy[0].urls.len(), 2);
        assert_eq!(c.servers().len(), 1);
        assert!(!format!("{c:?}").contains("\"id\""));
        let e =
            AvSignal::decode(&json!({"type":"configs","ice":[{"urls":"http://x"}]})).unwrap_err();
        assert!(e.contains("http://x"), "{e}");
        let e = AvSignal::decode(&json!({"type":"configs","avmode":"hologram"})).unwrap_err();
        assert!(e.contains("hologram"), "{e}");
    }

    #[test]
    fn redaction() {
        let c = AvConfigs::new(
            "video",
            vec![],
            vec![AvIceServer {
                urls: vec!["turn:a:3579".into()],
                username: Some("u".into()),
                credential: Some(Secret::new("pw-123")),
            }],
        );
        let v = c.to_value();
        assert!(v.to_string().contains("pw-123"));
        let r = redact(v);
        assert!(!r.to_string().contains("pw-123"), "{r}");
        assert_eq!(r["avproxy"][0]["username"], "u");
    }

    #[test]
    fn end_reasons() {
        assert_eq!(EndKind::of("AgentBusy"), EndKind::Busy);
        assert_eq!(EndKind::of("USER_BUSY"), EndKind::Busy);
        assert_eq!(EndKind::of("NoAnswer"), EndKind::NoAnswer);
        assert_eq!(EndKind::of("NET_ERROR"), EndKind::Failed);
        assert_eq!(EndKind::of("COMMON"), EndKind::Normal);
        assert_eq!(EndKind::of(""), EndKind::Normal);
    }
}
