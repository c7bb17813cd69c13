//! The `[avaya]` configuration section, validated against the vendor's documented ranges.
//!
//! ```toml
//! vendor = "avaya"
//!
//! [avaya]
//! region = "na"                                   # or host_url = "https://na.api.avayacloud.com"
//! integration_id = "6f0c3a52-8d1e-4c55-9a51-0f7a3c1d2e4b"
//! appkey = "..."
//! token = "jwt.eyJ..."                            # minted by the app's backend
//! display_name = "Casey"
//! idle_timeout_secs = 300                         # 300..=3300
//! idle_shutdown_grace_secs = 30                   # 30..=120
//! reconnection_timeout_secs = 120                 # 120..=300
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use cc_core::{Config, Error, Result, Secret};
use serde::{Deserialize, Serialize};

use crate::VENDOR;

/// Longest message text, in characters.
pub const MESSAGE_MAX_CHARS: usize = 4096;
/// Most key/value pairs in session or engagement parameters.
pub const MAPPED_DATA_MAX_ENTRIES: usize = 20;
/// Longest key of a parameter.
pub const MAPPED_DATA_KEY_MAX: usize = 64;
/// Longest value of a parameter.
pub const MAPPED_DATA_VALUE_MAX: usize = 256;
/// Longest display name.
pub const DISPLAY_NAME_MAX: usize = 70;
/// The idle timeout range, seconds (vendor document).
pub const IDLE_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 300..=3300;
/// The idle shutdown grace range, seconds (vendor document).
pub const GRACE_RANGE: std::ops::RangeInclusive<u64> = 30..=120;
/// The reconnection timeout range, seconds (vendor document).
pub const RECONNECTION_RANGE: std::ops::RangeInclusive<u64> = 120..=300;

/// The `[avaya]` section.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvayaConfig {
    /// The regional API host prefix (`na`, `eu`, ...): `https://{region}.api.avayacloud.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The API host URL, instead of `region`. `https`, or `http` to a loopback address only
    /// (a local simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_url: Option<String>,
    /// The chat integration's id (a UUID).
    pub integration_id: String,
    /// The application key of the integration.
    #[serde(serialize_with = "expose")]
    pub appkey: Secret,
    /// The customer's JWT (`jwt.<header>.<payload>.<signature>`), minted by the app's backend.
    #[serde(serialize_with = "expose")]
    pub token: Secret,
    /// The name shown to agents when the JWT carries none (at most 70 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Session parameters (at most 20 pairs; keys ≤ 64, values ≤ 256 characters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub session_parameters: BTreeMap<String, String>,
    /// Resume this server session instead of creating one (what the vendor's SDK keeps in
    /// `sessionStorage`); see `AvayaSession::session_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Seconds without user activity before `IdleWarning` (300..=3300, default 300).
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// Seconds after `IdleWarning` before the session shuts down (30..=120, default 30).
    #[serde(default = "default_grace")]
    pub idle_shutdown_grace_secs: u64,
    /// Seconds the event stream keeps retrying after a failure (120..=300, default 120).
    #[serde(default = "default_reconnection")]
    pub reconnection_timeout_secs: u64,
}

fn expose<S: serde::Serializer>(s: &Secret, ser: S) -> std::result::Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

fn default_idle() -> u64 {
    300
}
fn default_grace() -> u64 {
    30
}
fn default_reconnection() -> u64 {
    120
}

impl fmt::Debug for AvayaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvayaConfig")
            .field("region", &self.region)
            .field("host_url", &self.host_url)
            .field("integration_id", &self.integration_id)
            .field("appkey", &self.appkey)
            .field("token", &self.token)
            .field("display_name", &self.display_name)
            .field("session_parameters", &self.session_parameters.keys())
            .field("session_id", &self.session_id.as_ref().map(|_| "<set>"))
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("idle_shutdown_grace_secs", &self.idle_shutdown_grace_secs)
            .field("reconnection_timeout_secs", &self.reconnection_timeout_secs)
            .finish()
    }
}

impl AvayaConfig {
    /// A configuration with defaults for everything but the required fields.
    pub fn new(
        host_url: impl Into<String>,
        integration_id: impl Into<String>,
        appkey: Secret,
        token: Secret,
    ) -> Self {
        AvayaConfig {
            region: None,
            host_url: Some(host_url.into()),
            integration_id: integration_id.into(),
            appkey,
            token,
            display_name: None,
            session_parameters: BTreeMap::new(),
            session_id: None,
            idle_timeout_secs: default_idle(),
            idle_shutdown_grace_secs: default_grace(),
            reconnection_timeout_secs: default_reconnection(),
        }
    }

    /// Reads and validates the `[avaya]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        let c: AvayaConfig = config.section()?;
        c.validate()?;
        Ok(c)
    }

    /// Checks every field; errors name the field (`avaya.idle_timeout_secs`).
    pub fn validate(&self) -> Result<()> {
        self.base_url()?;
        check_uuid(&self.integration_id, "avaya.integration_id")?;
        if self.appkey.expose().trim().is_empty() {
            return Err(Error::invalid(VENDOR, "avaya.appkey", "empty"));
        }
        token_expiry(&self.token)
            .map_err(|reason| Error::invalid(VENDOR, "avaya.token", reason))?;
        if let Some(name) = &self.display_name {
            check_display_name(name, "avaya.display_name")?;
        }
        check_mapped_data(&self.session_parameters, "avaya.session_parameters")?;
        if let Some(id) = &self.session_id {
            check_uuid(id, "avaya.session_id")?;
        }
        check_range(
            self.idle_timeout_secs,
            IDLE_TIMEOUT_RANGE,
            "avaya.idle_timeout_secs",
        )?;
        check_range(
            self.idle_shutdown_grace_secs,
            GRACE_RANGE,
            "avaya.idle_shutdown_grace_secs",
        )?;
        check_range(
            self.reconnection_timeout_secs,
            RECONNECTION_RANGE,
            "avaya.reconnection_timeout_secs",
        )?;
        Ok(())
    }

    /// `{host}/sdk/digital/chat/v1/integrations/{integrationId}/`, with a trailing slash so
    /// relative paths join under it.
    pub fn base_url(&self) -> Result<url::Url> {
        let host = match (&self.region, &self.host_url) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    VENDOR,
                    "avaya.host_url",
                    "set either `region` or `host_url`, not both",
                ));
            }
            (Some(region), None) => {
                if region.is_empty()
                    || !region
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(Error::invalid(
                        VENDOR,
                        "avaya.region",
                        format!("`{region}` is not a region name (`na`, `eu`, ...)"),
                    ));
                }
                format!("https://{region}.api.avayacloud.com")
            }
            (None, Some(h)) => h.clone(),
            (None, None) => {
                return Err(Error::invalid(
                    VENDOR,
                    "avaya.host_url",
                    "missing (set `region` or `host_url`)",
                ));
            }
        };
        let url = url::Url::parse(&host)
            .map_err(|e| Error::invalid(VENDOR, "avaya.host_url", format!("`{host}`: {e}")))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(Error::invalid(
                    VENDOR,
                    "avaya.host_url",
                    "plain http is allowed only to a loopback address (a local simulator)",
                ));
            }
            other => {
                return Err(Error::invalid(
                    VENDOR,
                    "avaya.host_url",
                    format!("scheme `{other}`: expected https"),
                ));
            }
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid(
                VENDOR,
                "avaya.host_url",
                "must not carry a query or fragment",
            ));
        }
        let path = url.path().trim_end_matches('/');
        let mut base = url.clone();
        base.set_path(&format!(
            "{path}/sdk/digital/chat/v1/integrations/{}/",
            self.integration_id
        ));
        Ok(base)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// The idle shutdown grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.idle_shutdown_grace_secs)
    }

    /// The reconnection timeout.
    pub fn reconnection_timeout(&self) -> Duration {
        Duration::from_secs(self.reconnection_timeout_secs)
    }
}

fn check_range(v: u64, range: std::ops::RangeInclusive<u64>, field: &'static str) -> Result<()> {
    if range.contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(
            VENDOR,
            field,
            format!(
                "{v} s is outside {}..={} s (the vendor's range)",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// Checks a UUID in its hyphenated form.
pub fn check_uuid(v: &str, field: &'static str) -> Result<()> {
    if v.len() == 36 && uuid::Uuid::parse_str(v).is_ok() {
        Ok(())
    } else {
        Err(Error::invalid(
            VENDOR,
            field,
            format!("`{v}` is not a UUID"),
        ))
    }
}

/// Checks a display name (≤ 70 characters).
pub fn check_display_name(name: &str, field: &'static str) -> Result<()> {
    let n = name.chars().count();
    if n > DISPLAY_NAME_MAX {
        return Err(Error::invalid(
            VENDOR,
            field,
            format!("{n} characters, more than {DISPLAY_NAME_MAX}"),
        ));
    }
    Ok(())
}

/// Checks key/value parameters: ≤ 20 pairs, keys 1..=64, values ≤ 256 characters.
pub fn check_mapped_data(map: &BTreeMap<String, String>, field: &'static str) -> Result<()> {
    if map.len() > MAPPED_DATA_MAX_ENTRIES {
        return Err(Error::invalid(
            VENDOR,
            field,
            format!("{} pairs, more than {MAPPED_DATA_MAX_ENTRIES}", map.len()),
        ));
    }
    for (k, v) in map {
        let kn = k.chars().count();
        if kn == 0 || kn > MAPPED_DATA_KEY_MAX {
            return Err(Error::invalid(
                VENDOR,
                format!("{field}.{k}"),
                format!("key of {kn} characters; keys are 1..={MAPPED_DATA_KEY_MAX}"),
            ));
        }
        let vn = v.chars().count();
        if vn > MAPPED_DATA_VALUE_MAX {
            return Err(Error::invalid(
                VENDOR,
                format!("{field}.{k}"),
                format!("value of {vn} characters, more than {MAPPED_DATA_VALUE_MAX}"),
            ));
        }
    }
    Ok(())
}

/// Checks a message text: 1..=4096 characters.
pub fn check_text(text: &str, field: &'static str) -> Result<()> {
    let n = text.chars().count();
    if text.trim().is_empty() {
        return Err(Error::invalid(VENDOR, field, "empty message"));
    }
    if n > MESSAGE_MAX_CHARS {
        return Err(Error::invalid(
            VENDOR,
            field,
            format!("{n} characters, more than the {MESSAGE_MAX_CHARS} Avaya accepts"),
        ));
    }
    Ok(())
}

/// The `exp` claim (Unix seconds) of an AXP token `jwt.<header>.<payload>.<signature>`:
/// the payload is base64url JSON (padding optional). The signature is not checked: the
/// client only schedules its reminders from `exp`; the server checks the rest.
pub fn token_expiry(token: &Secret) -> std::result::Result<i64, String> {
    let parts: Vec<&str> = token.expose().split('.').collect();
    if parts.len() < 3 || parts[0] != "jwt" {
        return Err("expected `jwt.<header>.<payload>.<signature>`".to_owned());
    }
    let payload = parts[2].trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| format!("payload is not base64url: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("payload is not JSON: {e}"))?;
    json.get("exp")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .ok_or_else(|| "payload has no numeric `exp`".to_owned())
}
