//! The `[tetherfi]` configuration section.
//!
//! ```toml
//! vendor = "tetherfi"
//!
//! [tetherfi]
//! host = "chat.example-bank.com"      # production form: https://<host>, wss://<host>
//! # base_url = "http://127.0.0.1:8080"  # or an explicit base URL (http for a simulator)
//! transport = "dwr"                     # or "ws" (the WebSocket chat proxy)
//! ```
//!
//! Every duration is in milliseconds and range-checked; errors name the field
//! (`tetherfi.poll_timeout_ms`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cc_core::{Config, Error, Result, Secret, Vendor};
use serde::Deserialize;
use url::Url;

/// Which transport the adapter speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// The DWR web API with reverse-AJAX polling (`livechat.js`).
    #[default]
    Dwr,
    /// The WebSocket chat proxy of the newer mobile SDK.
    Ws,
}

impl Transport {
    /// The profile name (`dwr`, `ws`).
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Dwr => "dwr",
            Transport::Ws => "ws",
        }
    }
}

fn d_root() -> String {
    "/tetherfi/livechat".to_owned()
}
fn d_ws_path() -> String {
    "/ws-chat-proxy/ws/chat".to_owned()
}
fn d_lib() -> String {
    "web".to_owned()
}
fn d_comm_path() -> String {
    "sg_pweb".to_owned()
}
fn d_page() -> String {
    "/".to_owned()
}
const fn d_poll_timeout() -> u64 {
    9_000
}
const fn d_poll_retry() -> u64 {
    3_000
}
const fn d_max_retries() -> u32 {
    100
}
const fn d_request_timeout() -> u64 {
    15_000
}

/// The `[tetherfi]` section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TetherfiConfig {
    /// The transport (default `dwr`).
    #[serde(default)]
    pub transport: Transport,
    /// The vendor host (`chat.example.com`): `https://<host>` and `wss://<host>`.
    #[serde(default)]
    pub host: Option<String>,
    /// An explicit base URL (`http://127.0.0.1:8080` for a simulator); wins over `host`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The DWR servlet root (default `/tetherfi/livechat`; the mobile build used `/api/livechat`).
    #[serde(default = "d_root")]
    pub dwr_root: String,
    /// The chat-proxy path (default `/ws-chat-proxy/ws/chat`).
    #[serde(default = "d_ws_path")]
    pub ws_path: String,
    /// An explicit chat-proxy URL (`wss://host:8443/ws-chat-proxy/ws/chat`); wins over `ws_path`.
    #[serde(default)]
    pub ws_url: Option<String>,
    /// `SessionDetails.lib` (default `web`).
    #[serde(default = "d_lib")]
    pub lib: String,
    /// `SessionDetails.comm_path` (default `sg_pweb`).
    #[serde(default = "d_comm_path")]
    pub comm_path: String,
    /// The DWR `page` parameter (default `/`).
    #[serde(default = "d_page")]
    pub page: String,
    /// `SessionDetails.enable_autocb`: register a callback when no agent is available.
    #[serde(default)]
    pub enable_autocb: bool,
    /// The multi-chat variant (`multilivechat`): several chats per session, `Sid`/`clientId`.
    #[serde(default)]
    pub multichat: bool,
    /// Call `GetAccessToken` before `Start` and send the token as `pAccessToken`.
    #[serde(default)]
    pub use_access_token: bool,
    /// Customer details already encrypted by the app's backend: sent as `eCustDetails`
    /// instead of the details object.
    #[serde(default)]
    pub encrypted_customer_details: Option<Secret>,
    /// The browser-session state of an earlier session (cookies for DWR, the session token for
    /// the chat proxy), from `TetherfiSession::resume_token`, to re-attach to its chats.
    #[serde(default)]
    pub resume_token: Option<Secret>,
    /// How long a reverse-AJAX poll may take before it counts as failed (default 9000 ms).
    #[serde(default = "d_poll_timeout")]
    pub poll_timeout_ms: u64,
    /// The wait after a failed poll and between heartbeats while offline (default 3000 ms).
    #[serde(default = "d_poll_retry")]
    pub poll_retry_ms: u64,
    /// Retries before giving up for good (default 100).
    #[serde(default = "d_max_retries")]
    pub max_retries: u32,
    /// How long a call, or `Start` waiting for `OnStartSuccess`, may take (default 15000 ms).
    #[serde(default = "d_request_timeout")]
    pub request_timeout_ms: u64,
    /// Audio/video calls (`[tetherfi.calls]`).
    #[serde(default)]
    pub calls: CallsConfig,
}

const fn d_media_timeout() -> u64 {
    10_000
}
const fn d_answer_timeout() -> u64 {
    120_000
}
const fn d_reconnect_window() -> u64 {
    10_000
}
fn d_bind() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// The `[tetherfi.calls]` section: media settings of audio/video calls.
///
/// ```toml
/// [tetherfi.calls]
/// # ice_servers = [{ urls = ["turn:avproxy.example.com:3579"], username = "u", credential = "c" }]
/// # bind = "0.0.0.0"               # the address the media socket binds (tests: 127.0.0.1)
/// # opus = false                   # offer Opus first (needs cc-rtc's `opus` feature)
/// # media_timeout_ms = 10000       # answer → ICE + DTLS connected
/// # answer_timeout_ms = 120000     # offer → the CSO's answer (queued, ringing)
/// # reconnect_window_ms = 10000    # media lost this long ends the call (§2.6)
/// ```
///
/// The servers the server pushes in `configs` (`ice`, `avproxy`) are used as well.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// ICE servers used for every call, before the ones the server pushes.
    #[serde(default)]
    pub ice_servers: Vec<cc_rtc::media::IceServer>,
    /// The address the media's UDP socket binds (default `0.0.0.0`).
    #[serde(default = "d_bind")]
    pub bind: IpAddr,
    /// Offer Opus first (needs cc-rtc's `opus` feature); G.711 always.
    #[serde(default)]
    pub opus: bool,
    /// How long media may take to connect after the answer (default 10000 ms).
    #[serde(default = "d_media_timeout")]
    pub media_timeout_ms: u64,
    /// How long the CSO may take to answer the offer (default 120000 ms; the server's own
    /// queue timer usually ends the call first).
    #[serde(default = "d_answer_timeout")]
    pub answer_timeout_ms: u64,
    /// How long media may stay disconnected before the call ends (default 10000 ms, §2.6).
    #[serde(default = "d_reconnect_window")]
    pub reconnect_window_ms: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ice_servers: Vec::new(),
            bind: d_bind(),
            opus: false,
            media_timeout_ms: d_media_timeout(),
            answer_timeout_ms: d_answer_timeout(),
            reconnect_window_ms: d_reconnect_window(),
        }
    }
}

impl CallsConfig {
    /// How long media may take to connect after the answer.
    pub fn media_timeout(&self) -> Duration {
        Duration::from_millis(self.media_timeout_ms)
    }

    /// How long the CSO may take to answer.
    pub fn answer_timeout(&self) -> Duration {
        Duration::from_millis(self.answer_timeout_ms)
    }

    /// How long media may stay disconnected.
    pub fn reconnect_window(&self) -> Duration {
        Duration::from_millis(self.reconnect_window_ms)
    }

    /// Checks the ICE URLs and the ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        cc_rtc::media::IceServer::validate_all(
            &self.ice_servers,
            Vendor::Tetherfi,
            "tetherfi.calls.ice_servers",
        )?;
        check_range(
            "tetherfi.calls.media_timeout_ms",
            self.media_timeout_ms,
            100,
            120_000,
        )?;
        check_range(
            "tetherfi.calls.answer_timeout_ms",
            self.answer_timeout_ms,
            100,
            3_600_000,
        )?;
        check_range(
            "tetherfi.calls.reconnect_window_ms",
            self.reconnect_window_ms,
            100,
            600_000,
        )
    }
}

impl fmt::Debug for TetherfiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TetherfiConfig")
            .field("transport", &self.transport)
            .field("host", &self.host)
            .field("base_url", &self.base_url)
            .field("dwr_root", &self.dwr_root)
            .field("ws_path", &self.ws_path)
            .field("ws_url", &self.ws_url)
            .field("lib", &self.lib)
            .field("multichat", &self.multichat)
            .field("use_access_token", &self.use_access_token)
            .field(
                "encrypted_customer_details",
                &self.encrypted_customer_details,
            )
            .field("resume_token", &self.resume_token)
            .field("poll_timeout_ms", &self.poll_timeout_ms)
            .field("poll_retry_ms", &self.poll_retry_ms)
            .field("max_retries", &self.max_retries)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

fn check_range(field: &'static str, v: u64, lo: u64, hi: u64) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(
            Vendor::Tetherfi,
            field,
            format!("{v} is outside {lo}..={hi}"),
        ))
    }
}

impl TetherfiConfig {
    /// A configuration for an explicit base URL, everything else default.
    pub fn new(base_url: impl Into<String>, transport: Transport) -> Self {
        TetherfiConfig {
            transport,
            host: None,
            base_url: Some(base_url.into()),
            dwr_root: d_root(),
            ws_path: d_ws_path(),
            ws_url: None,
            lib: d_lib(),
            comm_path: d_comm_path(),
            page: d_page(),
            enable_autocb: false,
            multichat: false,
            use_access_token: false,
            encrypted_customer_details: None,
            resume_token: None,
            poll_timeout_ms: d_poll_timeout(),
            poll_retry_ms: d_poll_retry(),
            max_retries: d_max_retries(),
            request_timeout_ms: d_request_timeout(),
            calls: CallsConfig::default(),
        }
    }

    /// Reads and validates the `[tetherfi]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        if config.vendor != Vendor::Tetherfi {
            return Err(Error::invalid(
                Vendor::Tetherfi,
                "vendor",
                format!("expected tetherfi, found {}", config.vendor),
            ));
        }
        let c: TetherfiConfig = config.section()?;
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges and URLs.
    pub fn validate(&self) -> Result<()> {
        self.base()?;
        if self.transport == Transport::Ws {
            self.ws_endpoint()?;
        }
        if !self.dwr_root.starts_with('/') {
            return Err(Error::invalid(
                Vendor::Tetherfi,
                "tetherfi.dwr_root",
                "must start with `/`",
            ));
        }
        check_range(
            "tetherfi.poll_timeout_ms",
            self.poll_timeout_ms,
            100,
            120_000,
        )?;
        check_range("tetherfi.poll_retry_ms", self.poll_retry_ms, 10, 60_000)?;
        check_range(
            "tetherfi.max_retries",
            u64::from(self.max_retries),
            1,
            10_000,
        )?;
        check_range(
            "tetherfi.request_timeout_ms",
            self.request_timeout_ms,
            100,
            300_000,
        )?;
        if self.lib.is_empty() {
            return Err(Error::invalid(Vendor::Tetherfi, "tetherfi.lib", "empty"));
        }
        self.calls.validate()
    }

    /// The base URL: `base_url`, else `https://<host>`.
    pub fn base(&self) -> Result<Url> {
        let (field, text) = match (&self.base_url, &self.host) {
            (Some(b), _) => ("tetherfi.base_url", b.clone()),
            (None, Some(h)) => {
                if h.contains('/') {
                    return Err(Error::invalid(
                        Vendor::Tetherfi,
                        "tetherfi.host",
                        "a host name only, without scheme or path",
                    ));
                }
                ("tetherfi.host", format!("https://{h}"))
            }
            (None, None) => {
                return Err(Error::invalid(
                    Vendor::Tetherfi,
                    "tetherfi.host",
                    "missing (set `host` or `base_url`)",
                ));
            }
        };
        let url = Url::parse(&text)
            .map_err(|e| Error::invalid(Vendor::Tetherfi, field, format!("`{text}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::invalid(
                Vendor::Tetherfi,
                field,
                "expected an http(s) URL with a host",
            ));
        }
        Ok(url)
    }

    /// A URL under the base: `path` is absolute from the base's origin.
    pub fn url(&self, path: &str) -> Result<Url> {
        let base = self.base()?;
        let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
        Url::parse(&joined)
            .map_err(|e| Error::invalid(Vendor::Tetherfi, "tetherfi.base_url", e.to_string()))
    }

    /// The DWR servlet root URL.
    pub fn dwr_url(&self, rest: &str) -> Result<Url> {
        self.url(&format!("{}{rest}", self.dwr_root.trim_end_matches('/')))
    }

    /// The chat-proxy URL: `ws_url`, else the base with `ws`/`wss` and `ws_path`.
    pub fn ws_endpoint(&self) -> Result<Url> {
        if let Some(u) = &self.ws_url {
            let url = Url::parse(u).map_err(|e| {
                Error::invalid(Vendor::Tetherfi, "tetherfi.ws_url", format!("`{u}`: {e}"))
            })?;
            if !matches!(url.scheme(), "ws" | "wss") {
                return Err(Error::invalid(
                    Vendor::Tetherfi,
                    "tetherfi.ws_url",
                    "expected a ws(s) URL",
                ));
            }
            return Ok(url);
        }
        let mut url = self.url(&self.ws_path)?;
        let scheme = if url.scheme() == "http" { "ws" } else { "wss" };
        url.set_scheme(scheme).map_err(|()| {
            Error::invalid(
                Vendor::Tetherfi,
                "tetherfi.base_url",
                "cannot derive a ws URL",
            )
        })?;
        Ok(url)
    }

    /// The poll timeout.
    pub fn poll_timeout(&self) -> Duration {
        Duration::from_millis(self.poll_timeout_ms)
    }

    /// The retry and heartbeat interval.
    pub fn poll_retry(&self) -> Duration {
        Duration::from_millis(self.poll_retry_ms)
    }

    /// The call timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<TetherfiConfig> {
        TetherfiConfig::from_config(&Config::from_toml(toml)?)
    }

    #[test]
    fn production_form() {
        let c = parse(
            "vendor = \"tetherfi\"\n[tetherfi]\nhost = \"chat.example.com\"\ntransport = \"ws\"\n",
        )
        .unwrap();
        assert_eq!(
            c.dwr_url("/call/plainpoll/livechat.dwr").unwrap().as_str(),
            "https://chat.example.com/tetherfi/livechat/call/plainpoll/livechat.dwr"
        );
        assert_eq!(
            c.ws_endpoint().unwrap().as_str(),
            "wss://chat.example.com/ws-chat-proxy/ws/chat"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("vendor = \"tetherfi\"\n[tetherfi]\n").unwrap_err();
        assert!(e.to_string().contains("tetherfi.host"), "{e}");
        let e = parse("vendor = \"tetherfi\"\n[tetherfi]\nhost = \"x\"\npoll_timeout_ms = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("tetherfi.poll_timeout_ms"), "{e}");
        let e = parse("vendor = \"tetherfi\"\n[tetherfi]\nhost = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn calls_section() {
        let c = parse(
            "vendor = \"tetherfi\"\n[tetherfi]\nhost = \"x\"\n[tetherfi.calls]\nbind = \"127.0.0.1\"\n\
             ice_servers = [{ urls = [\"turn:avproxy.x:3579\"], username = \"u\", credential = \"pw-secret\" }]\n",
        )
        .unwrap();
        assert_eq!(c.calls.bind.to_string(), "127.0.0.1");
        assert_eq!(c.calls.ice_servers[0].urls, ["turn:avproxy.x:3579"]);
        assert!(!format!("{c:?}").contains("pw-secret"));
        let d = parse("vendor = \"tetherfi\"\n[tetherfi]\nhost = \"x\"\n").unwrap();
        assert_eq!(d.calls.bind.to_string(), "0.0.0.0");
        let e = parse(
            "vendor = \"tetherfi\"\n[tetherfi]\nhost = \"x\"\n[tetherfi.calls]\n\
             ice_servers = [{ urls = [\"http://x\"] }]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tetherfi.calls.ice_servers"), "{e}");
        let e = parse(
            "vendor = \"tetherfi\"\n[tetherfi]\nhost = \"x\"\n[tetherfi.calls]\n\
             ice_servers = [{ urls = [\"turn:x:3579\"] }]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("credential"), "{e}");
        let e = parse(
            "vendor = \"tetherfi\"\n[tetherfi]\nhost = \"x\"\n[tetherfi.calls]\nmedia_timeout_ms = 1\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("tetherfi.calls.media_timeout_ms"),
            "{e}"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = TetherfiConfig::new("http://127.0.0.1:1", Transport::Dwr);
        c.resume_token = Some(Secret::new("JSESSIONID=topsecret"));
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
