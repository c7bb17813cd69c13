//! The `[tvox]` configuration section: the widget library's `WidgetConf`
//! (`shared/protocols/tvox.md` §2.1) in snake_case.
//!
//! ```toml
//! vendor = "tvox"
//!
//! [tvox]
//! url = "https://contact.example.com"     # server.url; http:// and ws:// for a simulator
//! heartbeat_interval_ms = 5000             # server.heartbeatInterval
//! retry = { interval_ms = 10000 }          # server.retryOptions: never stop, every 10 s
//! default_service = "service0001"
//!
//! [[tvox.services]]                        # servicesConfiguration
//! type = "CHAT"
//! services = [{ code = "service0001", description = "Support" }]
//!
//! [tvox.customer]                          # customerInfo (optional: anonymous without)
//! display_name = "Mario Rossi"
//! value = "rossimario@example.com"
//! ```
//!
//! Nothing in this section is secret (the widget connects anonymously), so `Debug` is
//! derived; the customer's details are personal data, not credentials.

use std::time::Duration;

use cc_core::{Config, Error, Result, Vendor};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::wire::codec::WS_PATH;
use crate::wire::{ChannelServicesConfiguration, CustomerInfo, MultiChannelType, WebrtcConfig};

const V: Vendor = Vendor::Tvox;

/// `retryOptions` (fields not documented by the vendor; PROPOSED shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOptions {
    /// Wait between two connection attempts, in milliseconds (default 10 000).
    #[serde(default = "default_retry_ms")]
    pub interval_ms: u64,
    /// Attempts before giving up; `None` (the default) never stops.
    #[serde(default)]
    pub max_retries: Option<u32>,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            interval_ms: default_retry_ms(),
            max_retries: None,
        }
    }
}

/// `customerInfo`, in snake_case.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerConfig {
    /// `customerDisplayName`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `customerFirstName`.
    #[serde(default)]
    pub first_name: Option<String>,
    /// `customerLastName`.
    #[serde(default)]
    pub last_name: Option<String>,
    /// `customerId` (e.g. the address-book id).
    #[serde(default)]
    pub id: Option<String>,
    /// `customerValue` (e.g. the e-mail address).
    #[serde(default)]
    pub value: Option<String>,
    /// `customerPhoneNumber`.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// `customerCompany`.
    #[serde(default)]
    pub company: Option<String>,
}

/// The `[tvox.calls]` section: what audio and video calls (`Session::start_call`) need
/// beyond `[tvox.webrtc]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// The `PHONE_CALL` service of an audio call whose request names none
    /// (`CallRequest.routing.target`); else the first `PHONE_CALL` service of `services`.
    #[serde(default)]
    pub phone_service: Option<String>,
    /// The `VIDEO` service of a video call whose request names none; else the first
    /// `VIDEO` service of `services`.
    #[serde(default)]
    pub video_service: Option<String>,
    /// The local address the media's UDP socket binds; it is also the host candidate, so
    /// it must be a concrete address. Unset (the default): the address of the interface
    /// that routes to the TVox host (found with an unconnected-UDP route lookup, nothing is
    /// sent), which is `127.0.0.1` for a simulator on the same machine.
    #[serde(default)]
    pub bind: Option<std::net::IpAddr>,
    /// STUN/TURN servers used besides the ones TVox names in the handshake.
    #[serde(default)]
    pub ice_servers: Vec<cc_rtc::media::IceServer>,
    /// Whether to use the ICE servers TVox names in the handshake (default true).
    #[serde(default = "yes")]
    pub server_ice_servers: bool,
    /// Offer Opus first (needs `cc-rtc`'s `opus` feature); G.711 is always offered.
    #[serde(default)]
    pub opus: bool,
    /// How long media (ICE + DTLS) may take to come up once TVox says the call is
    /// `CONNECTED`, in milliseconds (default 15 000); then the call fails.
    #[serde(default = "default_media_ms")]
    pub media_timeout_ms: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            phone_service: None,
            video_service: None,
            bind: None,
            ice_servers: Vec::new(),
            server_ice_servers: true,
            opus: false,
            media_timeout_ms: default_media_ms(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_media_ms() -> u64 {
    15_000
}

/// The `[tvox]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TvoxConfig {
    /// `server.url`: `https://host` (production), or `http://`, `ws://`, `wss://` (a
    /// simulator, a proxy). A URL without a scheme is `https`. The WebSocket is
    /// `<url>/apps/widget/api/ws`, `wss` for `https` and `ws` for `http`.
    pub url: String,
    /// `document.teleniaWidgetID` of an OCC-generated widget, when there is one.
    #[serde(default)]
    pub widget_id: Option<String>,
    /// `server.heartbeatInterval` in milliseconds (default 5000).
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    /// `server.retryOptions`.
    #[serde(default)]
    pub retry: RetryOptions,
    /// `servicesConfiguration`: the channels and services the app uses and monitors.
    #[serde(default)]
    pub services: Vec<ChannelServicesConfiguration>,
    /// `customerInfo`: the default identity for every channel.
    #[serde(default)]
    pub customer: Option<CustomerConfig>,
    /// `server.webrtc`, passed to the server for the phone and video channels.
    #[serde(default)]
    pub webrtc: Option<WebrtcConfig>,
    /// The chat service used when a request names none (`Routing::target`).
    #[serde(default)]
    pub default_service: Option<String>,
    /// Audio and video calls: services, media binding, ICE servers.
    #[serde(default)]
    pub calls: CallsConfig,
    /// How long `connect` waits for the first handshake, in milliseconds (default 15 000).
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// How long a request waits for the server's answer, in milliseconds (default 30 000).
    #[serde(default = "default_request_ms")]
    pub request_timeout_ms: u64,
    /// The resume token of an earlier session of the same customer
    /// (`TvoxSession::resume_token`, or `Session::resume_settings`), presented in the
    /// handshake to re-attach to its open chats after an app restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<cc_core::Secret>,
}

fn default_heartbeat_ms() -> u64 {
    5000
}
fn default_retry_ms() -> u64 {
    10_000
}
fn default_connect_ms() -> u64 {
    15_000
}
fn default_request_ms() -> u64 {
    30_000
}

impl TvoxConfig {
    /// A configuration for `url` with every default and no services.
    pub fn new(url: impl Into<String>) -> Self {
        TvoxConfig {
            url: url.into(),
            widget_id: None,
            heartbeat_interval_ms: default_heartbeat_ms(),
            retry: RetryOptions::default(),
            services: Vec::new(),
            customer: None,
            webrtc: None,
            default_service: None,
            calls: CallsConfig::default(),
            connect_timeout_ms: default_connect_ms(),
            request_timeout_ms: default_request_ms(),
            resume_token: None,
        }
    }

    /// Adds `code` to the services of `channel`.
    pub fn with_service(mut self, channel: MultiChannelType, code: impl Into<String>) -> Self {
        let code = code.into();
        let entry = crate::wire::ServiceConfiguration {
            code,
            description: None,
        };
        match self.services.iter_mut().find(|c| c.channel == channel) {
            Some(c) => c.services.push(entry),
            None => self.services.push(ChannelServicesConfiguration {
                channel,
                services: vec![entry],
            }),
        }
        self
    }

    /// Reads and validates the `[tvox]` section of `config`.
    pub fn from_config(config: &Config) -> Result<Self> {
        let c: TvoxConfig = config.section()?;
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges and the URL; errors name the field.
    pub fn validate(&self) -> Result<()> {
        self.ws_url()?;
        range(
            "tvox.heartbeat_interval_ms",
            self.heartbeat_interval_ms,
            50,
            600_000,
        )?;
        range(
            "tvox.retry.interval_ms",
            self.retry.interval_ms,
            10,
            3_600_000,
        )?;
        range(
            "tvox.connect_timeout_ms",
            self.connect_timeout_ms,
            100,
            600_000,
        )?;
        range(
            "tvox.request_timeout_ms",
            self.request_timeout_ms,
            100,
            600_000,
        )?;
        for (i, ch) in self.services.iter().enumerate() {
            if let MultiChannelType::Unknown(s) = &ch.channel {
                return Err(Error::invalid(
                    V,
                    format!("tvox.services[{i}].type"),
                    format!("unknown channel {s:?} (PHONE_CALL, VIDEO, CHAT, MAIL, CALLBACK)"),
                ));
            }
            for (j, s) in ch.services.iter().enumerate() {
                if s.code.trim().is_empty() {
                    return Err(Error::invalid(
                        V,
                        format!("tvox.services[{i}].services[{j}].code"),
                        "empty",
                    ));
                }
            }
        }
        self.validate_calls()?;
        if let Some(c) = &self.customer
            && c.display_name
                .as_deref()
                .is_some_and(|n| n.trim().is_empty())
        {
            return Err(Error::invalid(V, "tvox.customer.display_name", "empty"));
        }
        if let Some(s) = &self.default_service {
            if s.trim().is_empty() {
                return Err(Error::invalid(V, "tvox.default_service", "empty"));
            }
            if !self.services.is_empty() && !self.monitors(&MultiChannelType::Chat, s) {
                return Err(Error::invalid(
                    V,
                    "tvox.default_service",
                    format!("{s:?} is not among the CHAT services of tvox.services"),
                ));
            }
        }
        Ok(())
    }

    fn validate_calls(&self) -> Result<()> {
        let c = &self.calls;
        if c.bind.is_some_and(|a| a.is_unspecified()) {
            return Err(Error::invalid(
                V,
                "tvox.calls.bind",
                "needs a concrete local address (it becomes the host candidate); leave it \
                 unset to use the interface that routes to TVox",
            ));
        }
        range(
            "tvox.calls.media_timeout_ms",
            c.media_timeout_ms,
            100,
            600_000,
        )?;
        for (field, service, channel) in [
            (
                "tvox.calls.phone_service",
                &c.phone_service,
                MultiChannelType::PhoneCall,
            ),
            (
                "tvox.calls.video_service",
                &c.video_service,
                MultiChannelType::Video,
            ),
        ] {
            if let Some(s) = service {
                if s.trim().is_empty() {
                    return Err(Error::invalid(V, field, "empty"));
                }
                if self.services.iter().any(|x| x.channel == channel) && !self.monitors(&channel, s)
                {
                    return Err(Error::invalid(
                        V,
                        field,
                        format!("{s:?} is not among the {channel} services of tvox.services"),
                    ));
                }
            }
        }
        cc_rtc::media::IceServer::validate_all(&c.ice_servers, V, "tvox.calls.ice_servers")?;
        Ok(())
    }

    /// The service of a new call: the request's, else the configured one, else the first
    /// of the channel in `services`; errors name `routing.target`.
    pub fn call_service(&self, video: bool, target: Option<&str>) -> Result<String> {
        let channel = if video {
            MultiChannelType::Video
        } else {
            MultiChannelType::PhoneCall
        };
        let configured = if video {
            &self.calls.video_service
        } else {
            &self.calls.phone_service
        };
        let service = target
            .map(str::to_owned)
            .or_else(|| configured.clone())
            .or_else(|| {
                self.services
                    .iter()
                    .find(|c| c.channel == channel)
                    .and_then(|c| c.services.first())
                    .map(|s| s.code.clone())
            })
            .ok_or_else(|| {
                Error::invalid(
                    V,
                    "routing.target",
                    format!(
                        "no {channel} service: set routing.target, tvox.calls.{}_service or a \
                         {channel} entry in tvox.services",
                        if video { "video" } else { "phone" }
                    ),
                )
            })?;
        if service.trim().is_empty() {
            return Err(Error::invalid(V, "routing.target", "empty service code"));
        }
        Ok(service)
    }

    /// What a session with this configuration supports: [`crate::CAPABILITIES`], without
    /// the calls unless `webrtc.enabled` (the widget library's condition for the phone and
    /// video channels).
    pub fn capabilities(&self) -> cc_core::Capabilities {
        let mut caps = crate::CAPABILITIES;
        if !self.webrtc.as_ref().is_some_and(|w| w.enabled) {
            caps.calls_audio = false;
            caps.calls_video = false;
            caps.call_hold = false;
            caps.call_dtmf = false;
        }
        caps
    }

    /// Whether `service` on `channel` is in [`TvoxConfig::services`].
    pub fn monitors(&self, channel: &MultiChannelType, service: &str) -> bool {
        self.services
            .iter()
            .any(|c| &c.channel == channel && c.services.iter().any(|s| s.code == service))
    }

    /// The WebSocket URL: `wss://host/apps/widget/api/ws` for `https://host`.
    pub fn ws_url(&self) -> Result<Url> {
        let raw = self.url.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("https://{raw}")
        };
        let mut url = Url::parse(&with_scheme)
            .map_err(|e| Error::invalid(V, "tvox.url", format!("not a URL: {e}")))?;
        let scheme = match url.scheme() {
            "https" | "wss" => "wss",
            "http" | "ws" => "ws",
            other => {
                return Err(Error::invalid(
                    V,
                    "tvox.url",
                    format!("scheme {other:?} is none of https, http, wss, ws"),
                ));
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::invalid(V, "tvox.url", "no host"));
        }
        url.set_scheme(scheme)
            .map_err(|()| Error::invalid(V, "tvox.url", "cannot use a WebSocket scheme"))?;
        let path = url.path().trim_end_matches('/').to_owned();
        if !path.ends_with(WS_PATH) {
            url.set_path(&format!("{path}{WS_PATH}"));
        }
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// The configured customer as the wire's `CustomerInfo`; `None` without a display name
    /// (the agent then sees an anonymous contact).
    pub fn customer_info(&self) -> Option<CustomerInfo> {
        let c = self.customer.as_ref()?;
        Some(CustomerInfo {
            customer_display_name: c.display_name.clone()?,
            customer_first_name: c.first_name.clone(),
            customer_last_name: c.last_name.clone(),
            customer_id: c.id.clone(),
            customer_value: c.value.clone(),
            customer_phone_number: c.phone_number.clone(),
            customer_company: c.company.clone(),
        })
    }
}

fn range(field: &'static str, v: u64, lo: u64, hi: u64) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(
            V,
            field,
            format!("{v} is outside {lo}..={hi}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<TvoxConfig> {
        TvoxConfig::from_config(&Config::from_toml(toml)?)
    }

    #[test]
    fn defaults_and_urls() {
        let c = parse("vendor = \"tvox\"\n[tvox]\nurl = \"contact.example.com\"\n").unwrap();
        assert_eq!(c.heartbeat_interval_ms, 5000);
        assert_eq!(c.retry.interval_ms, 10_000);
        assert_eq!(c.retry.max_retries, None);
        assert_eq!(
            c.ws_url().unwrap().as_str(),
            "wss://contact.example.com/apps/widget/api/ws"
        );
        let sim = TvoxConfig::new("http://127.0.0.1:9000/");
        assert_eq!(
            sim.ws_url().unwrap().as_str(),
            "ws://127.0.0.1:9000/apps/widget/api/ws"
        );
        let explicit = TvoxConfig::new("wss://h/apps/widget/api/ws");
        assert_eq!(
            explicit.ws_url().unwrap().as_str(),
            "wss://h/apps/widget/api/ws"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("vendor = \"tvox\"\n[tvox]\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(e.to_string().contains("tvox.url"), "{e}");
        let e = parse("vendor = \"tvox\"\n[tvox]\nurl = \"x\"\nheartbeat_interval_ms = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("tvox.heartbeat_interval_ms"), "{e}");
        let e = parse("vendor = \"tvox\"\n[tvox]\nurl = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = parse(
            "vendor = \"tvox\"\n[tvox]\nurl = \"x\"\ndefault_service = \"s9\"\n\
             [[tvox.services]]\ntype = \"CHAT\"\nservices = [{ code = \"s1\", descritpion = \"d\" }]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tvox.default_service"), "{e}");
    }

    #[test]
    fn calls_section() {
        let c = parse(
            "vendor = \"tvox\"\n[tvox]\nurl = \"x\"\n\
             [[tvox.services]]\ntype = \"PHONE_CALL\"\nservices = [{ code = \"p1\" }]\n\
             [tvox.calls]\nbind = \"127.0.0.1\"\n\
             ice_servers = [{ urls = [\"turn:t.example.com:3478\"], username = \"u\", credential = \"pw\" }]\n",
        )
        .unwrap();
        assert_eq!(
            c.calls.bind.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1")
        );
        assert!(!format!("{c:?}").contains("pw"));
        assert_eq!(c.call_service(false, None).unwrap(), "p1");
        assert_eq!(c.call_service(false, Some("p2")).unwrap(), "p2");
        let e = c.call_service(true, None).unwrap_err();
        assert!(e.to_string().contains("routing.target"), "{e}");
        assert_eq!(TvoxConfig::new("x").calls.bind, None, "found per call");
        let e = parse("vendor = \"tvox\"\n[tvox]\nurl = \"x\"\n[tvox.calls]\nbind = \"0.0.0.0\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("tvox.calls.bind"), "{e}");
        let e = parse(
            "vendor = \"tvox\"\n[tvox]\nurl = \"x\"\n[tvox.calls]\nice_servers = [{ urls = [\"http://x\"] }]\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("tvox.calls.ice_servers[0].urls[0]"),
            "{e}"
        );
        let e = parse(
            "vendor = \"tvox\"\n[tvox]\nurl = \"x\"\n\
             [[tvox.services]]\ntype = \"PHONE_CALL\"\nservices = [{ code = \"p1\" }]\n\
             [tvox.calls]\nphone_service = \"p9\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tvox.calls.phone_service"), "{e}");
    }

    #[test]
    fn services_and_customer() {
        let c = parse(
            "vendor = \"tvox\"\n[tvox]\nurl = \"x\"\ndefault_service = \"s1\"\n\
             [[tvox.services]]\ntype = \"CHAT\"\nservices = [{ code = \"s1\", descritpion = \"d\" }]\n\
             [tvox.customer]\ndisplay_name = \"Mario\"\nvalue = \"m@example.com\"\n",
        )
        .unwrap();
        assert!(c.monitors(&MultiChannelType::Chat, "s1"));
        assert!(!c.monitors(&MultiChannelType::Video, "s1"));
        assert_eq!(c.services[0].services[0].description.as_deref(), Some("d"));
        let info = c.customer_info().unwrap();
        assert_eq!(info.customer_display_name, "Mario");
        assert_eq!(info.customer_value.as_deref(), Some("m@example.com"));
        let anon = TvoxConfig::new("x");
        assert_eq!(anon.customer_info(), None);
    }
}
