//! `cc-cli adapters`: which adapters this build holds, and what each supports per transport.

use std::fmt::Write as _;

use cc_sdk::{AdapterStatus, Capabilities, Vendor};
use serde_json::{Map, Value, json};

/// Flags of `cc-cli adapters`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only this vendor (expertflow, tvox, avaya, genesys, tetherfi).
    #[arg(long)]
    vendor: Option<Vendor>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Writes the list to `out`.
pub(crate) fn run(
    args: &Args,
    out: &mut dyn std::io::Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<(Vendor, AdapterStatus)> = Vendor::ALL
        .into_iter()
        .filter(|v| args.vendor.is_none_or(|want| want == *v))
        .map(|v| (v, cc_sdk::adapter_status(v)))
        .collect();
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &render_json(&rows))?;
        writeln!(out)?;
    } else {
        out.write_all(render_text(&rows).as_bytes())?;
    }
    Ok(())
}

fn features(caps: &Capabilities) -> Vec<&'static str> {
    caps.features().map(|f| f.name()).collect()
}

fn render_text(rows: &[(Vendor, AdapterStatus)]) -> String {
    let mut out = String::new();
    for (vendor, status) in rows {
        let _ = write!(out, "{vendor} ({}): ", vendor.display_name());
        match status {
            AdapterStatus::Available(entry) => {
                out.push_str("available\n");
                for (i, (transport, caps)) in (entry.profiles)().into_iter().enumerate() {
                    let default = if i == 0 { " (default)" } else { "" };
                    let _ = writeln!(out, "  transport {transport}{default}");
                    let features = features(&caps);
                    let features = if features.is_empty() {
                        "none".to_owned()
                    } else {
                        features.join(", ")
                    };
                    let _ = writeln!(out, "    features: {features}");
                    let limits: Vec<String> = caps
                        .limits()
                        .into_iter()
                        .filter_map(|(name, v)| v.map(|v| format!("{name}={v}")))
                        .collect();
                    if !limits.is_empty() {
                        let _ = writeln!(out, "    limits: {}", limits.join(", "));
                    }
                }
            }
            AdapterStatus::FeatureOff => {
                let _ = writeln!(
                    out,
                    "not compiled in (enable the cc-sdk feature \"{}\")",
                    cc_sdk::cargo_feature(*vendor)
                );
            }
        }
    }
    out
}

fn render_json(rows: &[(Vendor, AdapterStatus)]) -> Value {
    let list = rows
        .iter()
        .map(|(vendor, status)| {
            let (status, transports) = match status {
                AdapterStatus::Available(entry) => {
                    let transports: Vec<Value> = (entry.profiles)()
                        .into_iter()
                        .enumerate()
                        .map(|(i, (name, caps))| {
                            let limits: Map<String, Value> = caps
                                .limits()
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), json!(v)))
                                .collect();
                            json!({
                                "name": name,
                                "default": i == 0,
                                "features": features(&caps),
                                "limits": limits,
                            })
                        })
                        .collect();
                    ("available", transports)
                }
                AdapterStatus::FeatureOff => ("feature_off", Vec::new()),
            };
            json!({
                "vendor": vendor.key(),
                "name": vendor.display_name(),
                "cargo_feature": cc_sdk::cargo_feature(*vendor),
                "status": status,
                "transports": transports,
            })
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use cc_sdk::{AdapterEntry, Config, ConnectFuture, Result};

    use super::*;

    const WEB: Capabilities = Capabilities {
        chat: true,
        typing_out: true,
        attachment_max_bytes: Some(1024),
        ..Capabilities::NONE
    };

    fn no_connect(_: Config) -> ConnectFuture {
        Box::pin(async { unreachable!("listing never connects") })
    }

    fn caps(_: &Config) -> Result<Capabilities> {
        Ok(WEB)
    }

    const ENTRY: AdapterEntry = AdapterEntry {
        vendor: Vendor::Genesys,
        profiles: || vec![("web-messaging", WEB), ("guest-chat", Capabilities::NONE)],
        capabilities: caps,
        connect: no_connect,
    };

    fn rows() -> Vec<(Vendor, AdapterStatus)> {
        vec![
            (Vendor::Genesys, AdapterStatus::Available(ENTRY)),
            (Vendor::Avaya, AdapterStatus::FeatureOff),
        ]
    }

    #[test]
    fn text_lists_transports_features_limits_and_why_a_vendor_is_missing() {
        assert_eq!(
            render_text(&rows()),
            "genesys (Genesys Cloud): available\n\
             \x20 transport web-messaging (default)\n\
             \x20   features: chat, typing_out\n\
             \x20   limits: attachment_max_bytes=1024\n\
             \x20 transport guest-chat\n\
             \x20   features: none\n\
             avaya (Avaya Experience Platform): not compiled in (enable the cc-sdk feature \"avaya\")\n"
        );
    }

    #[test]
    fn json_carries_the_same_facts() {
        let v = render_json(&rows());
        assert_eq!(v[0]["vendor"], "genesys");
        assert_eq!(v[0]["status"], "available");
        assert_eq!(v[0]["transports"][0]["name"], "web-messaging");
        assert_eq!(v[0]["transports"][0]["default"], true);
        assert_eq!(
            v[0]["transports"][0]["features"],
            json!(["chat", "typing_out"])
        );
        assert_eq!(
            v[0]["transports"][0]["limits"]["attachment_max_bytes"],
            1024
        );
        assert_eq!(
            v[0]["transports"][0]["limits"]["history_page_max"],
            Value::Null
        );
        assert_eq!(v[0]["transports"][1]["default"], false);
        assert_eq!(v[1]["status"], "feature_off");
        assert_eq!(v[1]["cargo_feature"], "avaya");
        assert_eq!(v[1]["transports"], json!([]));
    }
}
