//! The `[genesys]` configuration section.
//!
//! ```toml
//! vendor = "genesys"
//! [genesys]
//! transport = "web-messaging"          # or "guest-chat-v2"
//! region = "mypurecloud.ie"            # or base_url = "http://127.0.0.1:8080" (simulator)
//! deployment_id = "..."
//! org_id = "..."                       # guest-chat-v2 only
//! [genesys.routing]                    # guest-chat-v2 only
//! target_address = "Support"
//! priority = 2
//! skills = ["Printers"]
//! language = "English - Written"
//! [genesys.user_data]
//! customerId = "59606"
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use cc_core::{Error, Result, Secret, Vendor};

/// Which Genesys protocol to speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Web Messaging (Messenger guest API): the live protocol, the default.
    #[default]
    WebMessaging,
    /// ACD Web Chat v2 (`purecloud-v2-sockets`), retired by the vendor.
    GuestChatV2,
}

impl Transport {
    /// The name used in configuration and in the profile list.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::WebMessaging => "web-messaging",
            Transport::GuestChatV2 => "guest-chat-v2",
        }
    }
}

/// Queue routing for guest chat v2.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The queue name.
    pub target_address: Option<String>,
    /// Priority 0 (lowest) to 10.
    pub priority: Option<i32>,
    /// Skills.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Language skill (`English - Written`).
    pub language: Option<String>,
}

/// The `[genesys]` section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesysConfig {
    /// The protocol; `web-messaging` by default.
    #[serde(default)]
    pub transport: Transport,
    /// Region domain (`mypurecloud.com`, `euw2.pure.cloud`).
    pub region: Option<String>,
    /// Explicit base URL (`https://…`, or `http://127.0.0.1:<port>` for the simulator); wins
    /// over `region`. WebSocket URLs are derived from it (`http`→`ws`, `https`→`wss`).
    pub base_url: Option<String>,
    /// Messenger deployment id (web messaging) or widget deployment key (guest chat v2).
    pub deployment_id: String,
    /// Organization id (guest chat v2).
    pub org_id: Option<String>,
    /// Queue routing (guest chat v2).
    #[serde(default)]
    pub routing: RoutingConfig,
    /// User data / custom attributes sent when a chat starts.
    #[serde(default)]
    pub user_data: BTreeMap<String, String>,
    /// Web messaging: resume the session of this token instead of creating one.
    pub session_token: Option<Secret>,
    /// `Origin` header sent on the web messaging socket and history calls.
    pub origin: Option<String>,
    /// Client name sent as `application` on the web messaging URL.
    pub application: Option<String>,
    /// History page size (web messaging 1–100, default 25; guest chat v2 ≤ 100).
    pub history_page_size: Option<u32>,
}

impl fmt::Debug for GenesysConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenesysConfig")
            .field("transport", &self.transport)
            .field("region", &self.region)
            .field("base_url", &self.base_url)
            .field("deployment_id", &self.deployment_id)
            .field("org_id", &self.org_id)
            .field("routing", &self.routing)
            .field("user_data_keys", &self.user_data.keys().collect::<Vec<_>>())
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("origin", &self.origin)
            .field("application", &self.application)
            .field("history_page_size", &self.history_page_size)
            .finish()
    }
}

/// The URLs a configuration resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// REST base (`https://api.<region>`), without a trailing slash.
    pub rest: String,
    /// Web messaging socket URL with its query (`wss://webmessaging.<region>/v1?deploymentId=…`).
    pub messaging_ws: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::invalid(Vendor::Genesys, field, reason)
}

impl GenesysConfig {
    /// Reads and checks the `[genesys]` section.
    pub fn from_config(config: &cc_core::Config) -> Result<Self> {
        let c: GenesysConfig = config.section()?;
        c.validate()?;
        Ok(c)
    }

    /// A web messaging configuration against `base_url` (for tests and the simulator).
    pub fn web_messaging(base_url: &str, deployment_id: &str) -> Self {
        GenesysConfig {
            transport: Transport::WebMessaging,
            region: None,
            base_url: Some(base_url.to_owned()),
            deployment_id: deployment_id.to_owned(),
            org_id: None,
            routing: RoutingConfig::default(),
            user_data: BTreeMap::new(),
            session_token: None,
            origin: None,
            application: None,
            history_page_size: None,
        }
    }

    /// Checks fields that depend on each other.
    pub fn validate(&self) -> Result<()> {
        if self.deployment_id.trim().is_empty() {
            return Err(invalid("genesys.deployment_id", "empty"));
        }
        if self.region.is_none() && self.base_url.is_none() {
            return Err(invalid("genesys.region", "set `region` or `base_url`"));
        }
        if let Some(r) = &self.region
            && (r.is_empty() || r.contains('/') || r.contains(':'))
        {
            return Err(invalid(
                "genesys.region",
                "a domain such as `mypurecloud.com`, without scheme or path",
            ));
        }
        if let Some(b) = &self.base_url {
            let u = url::Url::parse(b).map_err(|e| invalid("genesys.base_url", e.to_string()))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(invalid("genesys.base_url", "scheme must be http or https"));
            }
        }
        if let Some(n) = self.history_page_size
            && !(1..=100).contains(&n)
        {
            return Err(invalid("genesys.history_page_size", "must be 1 to 100"));
        }
        if self.transport == Transport::GuestChatV2 {
            if self.org_id.as_deref().is_none_or(str::is_empty) {
                return Err(invalid("genesys.org_id", "required for guest-chat-v2"));
            }
            if self
                .routing
                .target_address
                .as_deref()
                .is_none_or(str::is_empty)
            {
                return Err(invalid(
                    "genesys.routing.target_address",
                    "required for guest-chat-v2",
                ));
            }
            if let Some(p) = self.routing.priority
                && !(0..=10).contains(&p)
            {
                return Err(invalid("genesys.routing.priority", "must be 0 to 10"));
            }
        }
        Ok(())
    }

    /// The URLs this configuration resolves to.
    pub fn endpoints(&self) -> Result<Endpoints> {
        let (rest, ws_base) = match (&self.base_url, &self.region) {
            (Some(b), _) => {
                let b = b.trim_end_matches('/').to_owned();
                let ws = if let Some(rest) = b.strip_prefix("https://") {
                    format!("wss://{rest}")
                } else if let Some(rest) = b.strip_prefix("http://") {
                    format!("ws://{rest}")
                } else {
                    return Err(invalid("genesys.base_url", "scheme must be http or https"));
                };
                (b, ws)
            }
            (None, Some(r)) => (
                format!("https://api.{r}"),
                format!("wss://webmessaging.{r}"),
            ),
            (None, None) => return Err(invalid("genesys.region", "set `region` or `base_url`")),
        };
        let mut ws = url::Url::parse(&format!("{ws_base}/v1"))
            .map_err(|e| invalid("genesys.base_url", e.to_string()))?;
        ws.query_pairs_mut()
            .append_pair("deploymentId", &self.deployment_id);
        if let Some(app) = &self.application {
            ws.query_pairs_mut().append_pair("application", app);
        }
        Ok(Endpoints {
            rest,
            messaging_ws: ws.to_string(),
        })
    }

    /// The history page size to use.
    pub fn page_size(&self) -> u32 {
        self.history_page_size.unwrap_or(match self.transport {
            Transport::WebMessaging => 25,
            Transport::GuestChatV2 => 100,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml: &str) -> Result<GenesysConfig> {
        GenesysConfig::from_config(&cc_core::Config::from_toml(toml)?)
    }

    #[test]
    fn region_form_defaults_to_tls() {
        let c = cfg("vendor='genesys'\n[genesys]\nregion='mypurecloud.ie'\ndeployment_id='d-1'")
            .unwrap();
        assert_eq!(c.transport, Transport::WebMessaging);
        let e = c.endpoints().unwrap();
        assert_eq!(e.rest, "https://api.mypurecloud.ie");
        assert_eq!(
            e.messaging_ws,
            "wss://webmessaging.mypurecloud.ie/v1?deploymentId=d-1"
        );
    }

    #[test]
    fn base_url_form_for_the_simulator() {
        let c = cfg("vendor='genesys'\n[genesys]\nbase_url='http://127.0.0.1:9/'\ndeployment_id='d'\napplication='my app'")
            .unwrap();
        let e = c.endpoints().unwrap();
        assert_eq!(e.rest, "http://127.0.0.1:9");
        assert_eq!(
            e.messaging_ws,
            "ws://127.0.0.1:9/v1?deploymentId=d&application=my+app"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            cfg("vendor='genesys'\n[genesys]\nregion='x'\ndeployment_id='d'\nbogus=1").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = cfg("vendor='genesys'\n[genesys]\nregion='x'").unwrap_err();
        assert!(e.to_string().contains("genesys.deployment_id"), "{e}");
        let e = cfg(
            "vendor='genesys'\n[genesys]\ntransport='guest-chat-v2'\nregion='x'\ndeployment_id='d'",
        )
        .unwrap_err();
        assert!(e.to_string().contains("genesys.org_id"), "{e}");
        let e = cfg("vendor='genesys'\n[genesys]\ntransport='guest-chat-v2'\nregion='x'\ndeployment_id='d'\norg_id='o'")
            .unwrap_err();
        assert!(
            e.to_string().contains("genesys.routing.target_address"),
            "{e}"
        );
        let e =
            cfg("vendor='genesys'\n[genesys]\nbase_url='ftp://x'\ndeployment_id='d'").unwrap_err();
        assert!(e.to_string().contains("genesys.base_url"), "{e}");
    }

    #[test]
    fn debug_hides_the_session_token() {
        let c = cfg(
            "vendor='genesys'\n[genesys]\nregion='x'\ndeployment_id='d'\nsession_token='s3cr3t'",
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
    }
}
