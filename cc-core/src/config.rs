//! Configuration: one `vendor` key plus that vendor's section.
//!
//! ```toml
//! vendor = "genesys"
//!
//! [genesys]
//! region = "mypurecloud.ie"
//! deployment_id = "..."
//! ```
//!
//! Load from TOML ([`Config::from_toml`]), JSON ([`Config::from_json`]) or the environment
//! ([`Config::from_env`]: `CC_VENDOR=genesys`, `CC_GENESYS__DEPLOYMENT_ID=...`, nested keys
//! joined by `__`). Each adapter reads its own section with [`Config::section`], whose errors
//! name the field (`genesys.deployment_id`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result, Vendor};

/// Extra trust for TLS, for tests and private deployments. There is no switch that turns
/// certificate checks off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM text of extra root certificates to trust besides the public roots.
    pub ca_pem: Option<String>,
    /// A PEM file of extra root certificates to trust besides the public roots.
    pub ca_file: Option<PathBuf>,
}

/// The SDK's configuration: which vendor, and that vendor's section.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// The vendor to connect to.
    pub vendor: Vendor,
    /// TLS trust settings.
    pub tls: TlsSettings,
    sections: BTreeMap<String, Value>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sections may hold secrets: show only which keys are set.
        let keys: BTreeMap<&str, Vec<&str>> = self
            .sections
            .iter()
            .map(|(name, v)| {
                let ks = v
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                (name.as_str(), ks)
            })
            .collect();
        f.debug_struct("Config")
            .field("vendor", &self.vendor)
            .field("tls", &self.tls)
            .field("sections", &keys)
            .finish()
    }
}

impl Config {
    /// A configuration for `vendor` whose section is `section` serialized.
    pub fn new(vendor: Vendor, section: impl Serialize) -> Result<Self> {
        let value = serde_json::to_value(section)
            .map_err(|e| Error::invalid(Some(vendor), vendor.key(), e.to_string()))?;
        let mut sections = BTreeMap::new();
        sections.insert(vendor.key().to_owned(), value);
        Ok(Config {
            vendor,
            tls: TlsSettings::default(),
            sections,
        })
    }

    /// Sets the TLS settings.
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let value: toml::Value = toml::from_str(text)
            .map_err(|e| Error::invalid(None, "config", format!("invalid TOML: {e}")))?;
        let json = serde_json::to_value(value)
            .map_err(|e| Error::invalid(None, "config", format!("invalid TOML: {e}")))?;
        Self::from_value(json)
    }

    /// Parses JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(None, "config", format!("invalid JSON: {e}")))?;
        Self::from_value(json)
    }

    /// Reads a file, TOML or JSON by its extension (`.json` is JSON, anything else TOML).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                None,
                "config",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// Reads `CC_VENDOR` and `CC_<VENDOR>__<KEY>[__<KEY>…]` (and `CC_TLS__CA_FILE`,
    /// `CC_TLS__CA_PEM`) from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_env_vars(std::env::vars())
    }

    /// Like [`Config::from_env`], over the given variables.
    ///
    /// Values are read as TOML values when they parse as one (`42`, `true`, `"quoted"`,
    /// `["a", "b"]`), else as plain strings; quote a value that must stay a string.
    pub fn from_env_vars<I, K, V>(vars: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut root = Map::new();
        for (k, v) in vars {
            let Some(rest) = k.as_ref().strip_prefix("CC_") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(Error::invalid(
                    None,
                    k.as_ref().to_owned(),
                    "empty key segment",
                ));
            }
            insert_path(&mut root, &path, env_value(v.as_ref()), k.as_ref())?;
        }
        Self::from_value(Value::Object(root))
    }

    /// Builds from a parsed document: a `vendor` key, an optional `tls` table, sections.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(mut root) = value else {
            return Err(Error::invalid(
                None,
                "config",
                "expected a table at the top level",
            ));
        };
        let vendor = match root.remove("vendor") {
            None => {
                return Err(Error::invalid(
                    None,
                    "vendor",
                    "missing (one of expertflow, tvox, avaya, genesys, tetherfi)",
                ));
            }
            Some(Value::String(s)) => s
                .parse::<Vendor>()
                .map_err(|e| Error::invalid(None, "vendor", e.to_string()))?,
            Some(other) => {
                return Err(Error::invalid(
                    None,
                    "vendor",
                    format!("expected a string, found {other}"),
                ));
            }
        };
        let tls = match root.remove("tls") {
            None => TlsSettings::default(),
            Some(v) => deserialize_at(v, "tls", None)?,
        };
        if !root.contains_key(vendor.key()) {
            return Err(Error::invalid(
                Some(vendor),
                vendor.key(),
                format!("missing section [{}]", vendor.key()),
            ));
        }
        Ok(Config {
            vendor,
            tls,
            sections: root.into_iter().collect(),
        })
    }

    /// The raw section of the configured vendor.
    pub fn raw_section(&self) -> Option<&Value> {
        self.sections.get(self.vendor.key())
    }

    /// Deserializes the configured vendor's section; errors name the field path.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T> {
        let key = self.vendor.key();
        let value = self.sections.get(key).cloned().ok_or_else(|| {
            Error::invalid(Some(self.vendor), key, format!("missing section [{key}]"))
        })?;
        deserialize_at(value, key, Some(self.vendor))
    }
}

fn deserialize_at<T: DeserializeOwned>(
    value: Value,
    root: &str,
    vendor: Option<Vendor>,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = root.to_owned();
        let path = e.path().to_string();
        if path != "." {
            field.push('.');
            field.push_str(&path);
        }
        let reason = e.into_inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        if let Some(name) = reason
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            field.push('.');
            field.push_str(name);
            return Error::invalid(vendor, field, "missing");
        }
        Error::invalid(vendor, field, reason)
    })
}

fn env_value(raw: &str) -> Value {
    #[derive(Deserialize)]
    struct One {
        v: toml::Value,
    }
    match toml::from_str::<One>(&format!("v = {raw}")) {
        Ok(one) => serde_json::to_value(one.v).unwrap_or_else(|_| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn insert_path(
    root: &mut Map<String, Value>,
    path: &[String],
    value: Value,
    var: &str,
) -> Result<()> {
    let (last, parents) = path.split_last().expect("split of a non-empty path");
    let mut node = root;
    for p in parents {
        let entry = node
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        node = entry.as_object_mut().ok_or_else(|| {
            Error::invalid(
                None,
                var.to_owned(),
                format!("`{p}` is both a value and a table"),
            )
        })?;
    }
    node.insert(last.clone(), value);
    Ok(())
}
