//! The `[expertflow]` configuration section.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use cc_core::{Error, Result, Secret, Vendor};
use cc_rtc::media::IceServer;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::wire::call::parse_switch_url;

const V: Vendor = Vendor::Expertflow;

/// The `[expertflow]` section.
///
/// A deployment serves every service under one host, path-routed
/// (`shared/protocols/expertflow.md` §2.1): give `base_url` (`https://HOST`, or
/// `http://127.0.0.1:PORT` for the simulator) and the standard layout is derived; any of the
/// `*_url` keys overrides one service.
///
/// ```
/// use cc_adapter_expertflow::ExpertflowConfig;
/// let c = ExpertflowConfig::new("https://cx.example.invalid", "5155", "customer-1");
/// let urls = c.urls().unwrap();
/// assert_eq!(urls.socket.as_str(), "https://cx.example.invalid/web-channel-manager");
/// assert_eq!(urls.ccm.as_str(), "https://cx.example.invalid/ccm");
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpertflowConfig {
    /// `https://HOST` of the deployment (or `http://…` for a local simulator).
    pub base_url: String,
    /// The web channel's service identifier (the CONNECT auth's `serviceIdentifier`).
    pub service_identifier: String,
    /// The customer's channel identifier (the CONNECT auth's `channelCustomerIdentifier`;
    /// the widget uses the pre-chat form's phone field). The same value resumes the chat
    /// after an app restart.
    pub channel_customer_identifier: String,
    /// The widget identifier for `widget-configs` (case-sensitive, e.g. `web`).
    #[serde(default = "default_widget")]
    pub widget_identifier: String,
    /// Socket URL override (default `{base_url}/web-channel-manager`).
    #[serde(default)]
    pub socket_url: Option<String>,
    /// Customer channel manager override (default `{base_url}/ccm`).
    #[serde(default)]
    pub ccm_url: Option<String>,
    /// File engine override (default `{base_url}/file-engine`).
    #[serde(default)]
    pub file_server_url: Option<String>,
    /// Conversation data override (default `{base_url}/conversation-manager/customer-topics`).
    #[serde(default)]
    pub conversation_url: Option<String>,
    /// Activities override (default `{base_url}/conversation-manager/activities`).
    #[serde(default)]
    pub activity_url: Option<String>,
    /// Forms override (default `{base_url}/unified-admin`).
    #[serde(default)]
    pub form_url: Option<String>,
    /// Business calendar override (default `{base_url}/business-calendar`).
    #[serde(default)]
    pub calendar_url: Option<String>,
    /// The routing queue sent in `CHAT_REQUESTED` (the widget sends `""`).
    #[serde(default)]
    pub queue: String,
    /// `browserDeviceInfo.deviceType` (the widget refuses to start without one).
    #[serde(default = "default_device")]
    pub device_type: String,
    /// `browserDeviceInfo.browserName`.
    #[serde(default = "default_browser")]
    pub browser_name: String,
    /// The pre-chat form id put in `formData.formId` (the widget config's `form`).
    #[serde(default)]
    pub form_id: Option<String>,
    /// Locale time zone (IANA), sent in `CHAT_REQUESTED`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Locale country, sent in `CHAT_REQUESTED`.
    #[serde(default)]
    pub country: Option<String>,
    /// First reconnect delay, in milliseconds (socket.io default 1000).
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay, in milliseconds (socket.io default 5000).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// How long to wait for acks, `CHANNEL_SESSION_STARTED` and the first connect, in
    /// milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Calls over the EF switch (`[expertflow.calls]`).
    #[serde(default)]
    pub calls: CallsConfig,
}

/// The `[expertflow.calls]` section.
///
/// Where the switch is and what to dial comes from the widget config's `webRtc` block
/// (`wssFs`, `uriFs`, `diallingUri`, `sipExtension`, `extensionPassword`, `iceServers`), as the
/// vendor's widget reads it; every key here that is set overrides the one from there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// The address the call's media (UDP) socket binds; it is the host ICE candidate, so it
    /// must be a concrete address. Unset (the default): the local address the system routes
    /// to the switch from (found with an unconnected UDP socket, no packet sent). The
    /// simulator's ready config uses `127.0.0.1`.
    #[serde(default)]
    pub media_bind: Option<IpAddr>,
    /// Overrides `wssFs`: the switch's SIP-over-WebSocket URL (`wss://SWITCH:7443`).
    #[serde(default)]
    pub switch_url: Option<String>,
    /// Overrides `uriFs`: the SIP domain.
    #[serde(default)]
    pub sip_domain: Option<String>,
    /// Overrides `diallingUri`: the number dialled.
    #[serde(default)]
    pub dialling_uri: Option<String>,
    /// Overrides `sipExtension`.
    #[serde(default)]
    pub extension: Option<String>,
    /// Overrides `extensionPassword`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Replaces the widget config's `iceServers` when set (`[]` = host candidates only).
    #[serde(default)]
    pub ice_servers: Option<Vec<IceServer>>,
    /// The registration's lifetime asked for, in seconds (the vendor client asks 600).
    #[serde(default = "default_register_expires")]
    pub register_expires: u32,
    /// How long media (ICE + DTLS) may take to come up after the answer, in milliseconds.
    #[serde(default = "default_media_timeout")]
    pub media_timeout_ms: u64,
    /// Offer Opus first (needs `cc-rtc`'s `opus` feature); G.711 is always offered.
    #[serde(default)]
    pub opus: bool,
    /// Delay between reconnect attempts to the switch, in milliseconds; up to 10 attempts
    /// (the vendor client: 10 attempts 5 s apart).
    #[serde(default = "default_switch_reconnect")]
    pub switch_reconnect_ms: u64,
}

const fn default_register_expires() -> u32 {
    600
}
const fn default_media_timeout() -> u64 {
    10_000
}
const fn default_switch_reconnect() -> u64 {
    5_000
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            media_bind: None,
            switch_url: None,
            sip_domain: None,
            dialling_uri: None,
            extension: None,
            password: None,
            ice_servers: None,
            register_expires: default_register_expires(),
            media_timeout_ms: default_media_timeout(),
            opus: false,
            switch_reconnect_ms: default_switch_reconnect(),
        }
    }
}

impl CallsConfig {
    /// Checks the overrides and ranges; errors name the field (`expertflow.calls.…`).
    pub fn validate(&self) -> Result<()> {
        let key = |f: &str| format!("expertflow.calls.{f}");
        if let Some(ip) = self.media_bind
            && ip.is_unspecified()
        {
            return Err(Error::invalid(
                V,
                key("media_bind"),
                format!(
                    "{ip} is not a concrete address (it becomes the ICE host candidate); leave it unset to use the one that routes to the switch"
                ),
            ));
        }
        if let Some(u) = &self.switch_url {
            parse_switch_url(u, &key("switch_url"))?;
        }
        for (name, v) in [
            ("sip_domain", &self.sip_domain),
            ("dialling_uri", &self.dialling_uri),
            ("extension", &self.extension),
        ] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.contains(|c: char| c.is_whitespace() || c == '@'))
            {
                return Err(Error::invalid(
                    V,
                    key(name),
                    format!("{v:?} is empty or has a space or `@`"),
                ));
            }
        }
        if let Some(servers) = &self.ice_servers {
            IceServer::validate_all(servers, V, &key("ice_servers"))?;
        }
        if !(30..=86_400).contains(&self.register_expires) {
            return Err(Error::invalid(
                V,
                key("register_expires"),
                "must be 30..=86400",
            ));
        }
        if !(100..=120_000).contains(&self.media_timeout_ms) {
            return Err(Error::invalid(
                V,
                key("media_timeout_ms"),
                "must be 100..=120000",
            ));
        }
        if !(10..=60_000).contains(&self.switch_reconnect_ms) {
            return Err(Error::invalid(
                V,
                key("switch_reconnect_ms"),
                "must be 10..=60000",
            ));
        }
        Ok(())
    }
}

fn default_widget() -> String {
    "web".to_owned()
}
fn default_device() -> String {
    "desktop".to_owned()
}
fn default_browser() -> String {
    "cc-sdk".to_owned()
}
const fn default_reconnect_initial() -> u64 {
    1000
}
const fn default_reconnect_max() -> u64 {
    5000
}
const fn default_timeout() -> u64 {
    20_000
}

impl fmt::Debug for ExpertflowConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing here is secret; the JWT arrives at run time and is kept in a `Secret`.
        f.debug_struct("ExpertflowConfig")
            .field("base_url", &self.base_url)
            .field("service_identifier", &self.service_identifier)
            .field(
                "channel_customer_identifier",
                &self.channel_customer_identifier,
            )
            .field("widget_identifier", &self.widget_identifier)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// The service URLs of a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Urls {
    /// Web channel manager (socket.io).
    pub socket: Url,
    /// Customer channel manager (widget configs, transcript).
    pub ccm: Url,
    /// File engine.
    pub file: Url,
    /// Conversation data (`…/customer-topics`).
    pub conversation: Url,
    /// Activities.
    pub activity: Url,
    /// Forms.
    pub form: Url,
    /// Business calendar.
    pub calendar: Url,
}

impl ExpertflowConfig {
    /// A configuration with defaults for everything but the base URL and the identities.
    pub fn new(
        base_url: impl Into<String>,
        service_identifier: impl Into<String>,
        channel_customer_identifier: impl Into<String>,
    ) -> Self {
        ExpertflowConfig {
            base_url: base_url.into(),
            service_identifier: service_identifier.into(),
            channel_customer_identifier: channel_customer_identifier.into(),
            widget_identifier: default_widget(),
            socket_url: None,
            ccm_url: None,
            file_server_url: None,
            conversation_url: None,
            activity_url: None,
            form_url: None,
            calendar_url: None,
            queue: String::new(),
            device_type: default_device(),
            browser_name: default_browser(),
            form_id: None,
            timezone: None,
            country: None,
            reconnect_initial_ms: default_reconnect_initial(),
            reconnect_max_ms: default_reconnect_max(),
            timeout_ms: default_timeout(),
            calls: CallsConfig::default(),
        }
    }

    /// Checks identities, URLs and ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let key = |f: &str| format!("expertflow.{f}");
        if self.service_identifier.trim().is_empty() {
            return Err(Error::invalid(V, key("service_identifier"), "empty"));
        }
        if self.channel_customer_identifier.trim().is_empty() {
            return Err(Error::invalid(
                V,
                key("channel_customer_identifier"),
                "empty",
            ));
        }
        if self.device_type.trim().is_empty() {
            return Err(Error::invalid(
                V,
                key("device_type"),
                "empty (the server refuses a chat request without one)",
            ));
        }
        if !(10..=60_000).contains(&self.reconnect_initial_ms) {
            return Err(Error::invalid(
                V,
                key("reconnect_initial_ms"),
                "must be 10..=60000",
            ));
        }
        if self.reconnect_max_ms < self.reconnect_initial_ms || self.reconnect_max_ms > 600_000 {
            return Err(Error::invalid(
                V,
                key("reconnect_max_ms"),
                "must be at least reconnect_initial_ms and at most 600000",
            ));
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            return Err(Error::invalid(V, key("timeout_ms"), "must be 100..=600000"));
        }
        self.calls.validate()?;
        self.urls().map(|_| ())
    }

    /// The timeout for acks, the chat start and the first connect.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The service URLs: the overrides, else the standard layout under `base_url`.
    pub fn urls(&self) -> Result<Urls> {
        let base = parse(&self.base_url, "base_url")?;
        let base_str = base.as_str().trim_end_matches('/').to_owned();
        let pick = |over: &Option<String>, field: &str, path: &str| -> Result<Url> {
            match over {
                Some(u) => parse(u, field),
                None => parse(&format!("{base_str}{path}"), "base_url"),
            }
        };
        Ok(Urls {
            socket: pick(&self.socket_url, "socket_url", "/web-channel-manager")?,
            ccm: pick(&self.ccm_url, "ccm_url", "/ccm")?,
            file: pick(&self.file_server_url, "file_server_url", "/file-engine")?,
            conversation: pick(
                &self.conversation_url,
                "conversation_url",
                "/conversation-manager/customer-topics",
            )?,
            activity: pick(
                &self.activity_url,
                "activity_url",
                "/conversation-manager/activities",
            )?,
            form: pick(&self.form_url, "form_url", "/unified-admin")?,
            calendar: pick(&self.calendar_url, "calendar_url", "/business-calendar")?,
        })
    }
}

fn parse(text: &str, field: &str) -> Result<Url> {
    let url = Url::parse(text)
        .map_err(|e| Error::invalid(V, format!("expertflow.{field}"), e.to_string()))?;
    match url.scheme() {
        "https" | "http" => {}
        other => {
            return Err(Error::invalid(
                V,
                format!("expertflow.{field}"),
                format!("scheme {other:?} is not https or http"),
            ));
        }
    }
    if url.host_str().is_none() {
        return Err(Error::invalid(V, format!("expertflow.{field}"), "no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let mut c = ExpertflowConfig::new("http://127.0.0.1:8080/", "5155", "c-1");
        c.file_server_url = Some("https://files.example.invalid/fe".into());
        let u = c.urls().unwrap();
        assert_eq!(
            u.socket.as_str(),
            "http://127.0.0.1:8080/web-channel-manager"
        );
        assert_eq!(u.file.as_str(), "https://files.example.invalid/fe");
        assert_eq!(
            u.conversation.as_str(),
            "http://127.0.0.1:8080/conversation-manager/customer-topics"
        );
        c.validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = ExpertflowConfig::new("ftp://x", "5155", "c-1");
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("expertflow.base_url"), "{e}");
        c.base_url = "https://x.invalid".into();
        c.channel_customer_identifier = " ".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("channel_customer_identifier"), "{e}");
        c.channel_customer_identifier = "c".into();
        c.timeout_ms = 1;
        assert!(c.validate().unwrap_err().to_string().contains("timeout_ms"));
    }

    #[test]
    fn calls_section() {
        let cfg = cc_core::Config::from_toml(
            "vendor = \"expertflow\"\n[expertflow]\nbase_url = \"https://x.invalid\"\nservice_identifier = \"1\"\nchannel_customer_identifier = \"2\"\n[expertflow.calls]\nmedia_bind = \"127.0.0.1\"\nswitch_url = \"wss://sw.invalid:7443\"\npassword = \"hunter2\"\nice_servers = [{urls = [\"stun:stun.invalid:3478\"]}]\n",
        )
        .unwrap();
        let c: ExpertflowConfig = cfg.section().unwrap();
        c.validate().unwrap();
        assert_eq!(c.calls.media_bind, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(c.calls.register_expires, 600);
        assert!(!format!("{c:?}").contains("hunter2"));
        let mut bad = c.clone();
        bad.calls.switch_url = Some("https://sw.invalid".into());
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("expertflow.calls.switch_url"), "{e}");
        let mut bad = c.clone();
        bad.calls.ice_servers = Some(vec![IceServer {
            urls: vec!["http://x".into()],
            username: None,
            credential: None,
        }]);
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("expertflow.calls.ice_servers[0].urls"), "{e}");
        let mut bad = c.clone();
        bad.calls.dialling_uri = Some("a b".into());
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("dialling_uri")
        );
        let mut bad = c;
        bad.calls.media_bind = Some(IpAddr::from([0, 0, 0, 0]));
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("expertflow.calls.media_bind")
        );
        assert_eq!(
            ExpertflowConfig::new("https://x.invalid", "1", "2")
                .calls
                .media_bind,
            None
        );
    }

    #[test]
    fn from_toml_rejects_unknown_keys() {
        let cfg = cc_core::Config::from_toml(
            "vendor = \"expertflow\"\n[expertflow]\nbase_url = \"https://x.invalid\"\nservice_identifier = \"1\"\nchannel_customer_identifier = \"2\"\nbogus = 1\n",
        )
        .unwrap();
        let e = cfg.section::<ExpertflowConfig>().unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
