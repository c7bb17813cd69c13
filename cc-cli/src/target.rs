//! Where `chat`, `status` and `load` connect: a configuration file, or a simulator started in
//! this process. Also the TOML rendering of a [`Config`] (printed by `sim`) and the loopback
//! check of `load`.

use std::net::IpAddr;
use std::path::PathBuf;

use cc_sdk::testkit::{RunningSim, SimEntry, SimStart};
use cc_sdk::{Config, Vendor};
use serde_json::Value;

/// The error type of the subcommands: a message for the person at the terminal.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Flags that say where to connect.
#[derive(Debug, clap::Args)]
pub(crate) struct TargetArgs {
    /// Configuration file (TOML; JSON when it ends in `.json`): `vendor = "…"` and that
    /// vendor's section, as printed by `cc-cli sim`.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "sim",
        conflicts_with = "sim"
    )]
    pub(crate) config: Option<PathBuf>,
    /// Start this vendor's simulator and connect to it (`load` runs it in a process of its
    /// own, the other subcommands in this one).
    #[arg(long, value_name = "VENDOR")]
    pub(crate) sim: Option<Vendor>,
    /// The simulator's transport (with --sim); the vendor's default when not given.
    #[arg(long, requires = "sim")]
    pub(crate) transport: Option<String>,
}

/// A resolved target: the configuration to connect with, and the simulator when one was
/// started here (kept alive as long as this value).
pub(crate) struct Target {
    pub(crate) config: Config,
    pub(crate) sim: Option<RunningSim>,
}

impl Target {
    /// Reads the configuration file, or starts the simulator. Must run inside a tokio runtime.
    pub(crate) async fn open(args: &TargetArgs) -> Result<Target, BoxError> {
        if let Some(vendor) = args.sim {
            let sim = start_sim(vendor, args.transport.clone(), 0).await?;
            return Ok(Target {
                config: sim.config.clone(),
                sim: Some(sim),
            });
        }
        let path = args
            .config
            .as_ref()
            .ok_or("give --config FILE or --sim VENDOR")?;
        Ok(Target {
            config: Config::from_file(path)?,
            sim: None,
        })
    }

    /// A short description: `genesys simulator (web-messaging) on 127.0.0.1:1234`, or the
    /// vendor of the configuration file.
    pub(crate) fn describe(&self) -> String {
        match &self.sim {
            Some(sim) => format!(
                "{} simulator ({}) on {}",
                sim.control.vendor(),
                sim.transport,
                sim.addr
            ),
            None => format!(
                "{} ({})",
                self.config.vendor,
                self.config.vendor.display_name()
            ),
        }
    }
}

/// The compiled-in simulator of `vendor`, or an error that lists the ones there are.
pub(crate) fn sim_entry(vendor: Vendor) -> Result<SimEntry, BoxError> {
    let sims = cc_sdk::sims();
    if let Some(entry) = sims.iter().find(|e| e.vendor == vendor) {
        return Ok(*entry);
    }
    let names: Vec<&str> = sims.iter().map(|e| e.vendor.key()).collect();
    Err(format!(
        "no simulator for {} is compiled into this program (simulators: {})",
        vendor.display_name(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
    .into())
}

/// Starts `vendor`'s simulator on 127.0.0.1:`port` (0 picks a free port).
pub(crate) async fn start_sim(
    vendor: Vendor,
    transport: Option<String>,
    port: u16,
) -> Result<RunningSim, BoxError> {
    let entry = sim_entry(vendor)?;
    if let Some(t) = &transport
        && !entry.transports.contains(&t.as_str())
    {
        return Err(format!(
            "--transport {t}: the {} simulator serves {}",
            vendor.key(),
            entry.transports.join(", ")
        )
        .into());
    }
    Ok((entry.start)(SimStart { transport, port }).await?)
}

/// The configuration as a TOML document that [`Config::from_toml`] reads back unchanged.
pub(crate) fn config_toml(config: &Config) -> Result<String, BoxError> {
    let mut root = toml::Table::new();
    root.insert(
        "vendor".into(),
        toml::Value::String(config.vendor.key().into()),
    );
    if config.tls != cc_sdk::TlsSettings::default() {
        let tls = strip_nulls(serde_json::to_value(&config.tls)?);
        root.insert("tls".into(), toml::Value::try_from(tls)?);
    }
    let section = config
        .raw_section()
        .cloned()
        .map(strip_nulls)
        .unwrap_or(Value::Object(Default::default()));
    root.insert(config.vendor.key().into(), toml::Value::try_from(section)?);
    Ok(toml::to_string(&root)?)
}

/// TOML has no null: drop null values (an absent key reads back as `None`).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// `config` with `values` set in its vendor section (other vendors' sections are dropped).
pub(crate) fn with_section_values(
    config: &Config,
    values: serde_json::Map<String, Value>,
) -> Result<Config, BoxError> {
    let mut section = match config.raw_section() {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    section.extend(values);
    let mut root = serde_json::Map::new();
    root.insert("vendor".into(), config.vendor.key().into());
    root.insert("tls".into(), serde_json::to_value(&config.tls)?);
    root.insert(config.vendor.key().into(), Value::Object(section));
    Ok(Config::from_value(Value::Object(root))?)
}

/// `config` with each of the string fields `fields` of its vendor section made unique by the
/// suffix `-<tag>`: a distinct customer identity, for vendors that keep it in the configuration.
pub(crate) fn vary(config: &Config, fields: &[String], tag: &str) -> Result<Config, BoxError> {
    if fields.is_empty() {
        return Ok(config.clone());
    }
    let mut values = serde_json::Map::new();
    for f in fields {
        let Some(Value::String(v)) = config.raw_section().and_then(|s| s.get(f)) else {
            return Err(format!(
                "--vary {f}: the [{}] section has no string field `{f}`",
                config.vendor.key()
            )
            .into());
        };
        values.insert(f.clone(), Value::String(format!("{v}-{tag}")));
    }
    with_section_values(config, values)
}

/// Every host a configuration names: the hosts of its URLs, and strings that are a domain
/// name or an IP address on their own (`region = "mypurecloud.ie"`).
pub(crate) fn hosts(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(section) = config.raw_section() {
        collect_hosts(section, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn collect_hosts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(h) = host_of(s) {
                out.push(h);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_hosts(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_hosts(i, out)),
        _ => {}
    }
}

fn host_of(s: &str) -> Option<String> {
    let s = s.trim();
    if s.contains("://")
        && let Ok(url) = url::Url::parse(s)
    {
        return url.host_str().map(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        });
    }
    if s.parse::<IpAddr>().is_ok() {
        return Some(s.to_owned());
    }
    let labels: Vec<&str> = s.split('.').collect();
    let domain = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_alphabetic()));
    domain.then(|| s.to_ascii_lowercase())
}

/// Checks that every host the configuration names resolves to loopback addresses only.
/// A configuration that names no host cannot be shown to be local and is refused too.
pub(crate) async fn check_loopback(config: &Config) -> Result<(), String> {
    let hosts = hosts(config);
    if hosts.is_empty() {
        return Err(format!(
            "the [{}] section names no host, so the target cannot be shown to be loopback; \
             pass --allow-remote to run against it anyway",
            config.vendor.key()
        ));
    }
    for host in hosts {
        let addrs: Vec<IpAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
            Ok(a) => a.map(|a| a.ip()).collect(),
            Err(e) => return Err(format!("cannot resolve {host}: {e}")),
        };
        if addrs.is_empty() || addrs.iter().any(|a| !a.is_loopback()) {
            return Err(format!(
                "{host} is not a loopback address ({}); load tests run against 127.0.0.1 \
                 unless --allow-remote is given",
                addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// Raises this process's open-file limit towards `want`: the hard limit too where the
/// process may (a privileged one), else the soft limit up to the hard one. Returns the soft
/// limit in force.
pub(crate) fn raise_open_files(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let current = now.current.unwrap_or(u64::MAX);
    if current >= want {
        return current;
    }
    let maximum = now.maximum.unwrap_or(u64::MAX);
    let raised = Rlimit {
        current: Some(want),
        maximum: Some(maximum.max(want)),
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        return want;
    }
    let to_hard = Rlimit {
        current: Some(maximum.min(want)),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, to_hard) {
        Ok(()) => maximum.min(want),
        Err(_) => current,
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration such as 500ms, 10s, 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}`: not a valid duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// The process's peak resident memory (`VmHWM` of /proc/self/status), in bytes.
pub(crate) fn peak_memory() -> Option<u64> {
    proc_status_kb("/proc/self/status", "VmHWM:").map(|kb| kb * 1024)
}

/// The figure `key` (in kB) of a process's status file.
pub(crate) fn proc_status_kb(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn config(section: Value) -> Config {
        Config::new(Vendor::Genesys, section).unwrap()
    }

    #[test]
    fn toml_rendering_reads_back_unchanged() {
        let c = config(json!({
            "base_url": "http://127.0.0.1:4000",
            "deployment_id": "d-1",
            "session_token": null,
            "routing": {"target_address": "Support", "skills": ["a", "b"]},
            "user_data": {"k": "v"},
            "history_page_size": 25,
        }))
        .with_tls(cc_sdk::TlsSettings {
            ca_pem: Some("-----BEGIN CERTIFICATE-----\n…".into()),
            ca_file: None,
        });
        let text = config_toml(&c).unwrap();
        assert!(text.starts_with("vendor = \"genesys\""), "{text}");
        let back = Config::from_toml(&text).unwrap();
        assert_eq!(back.vendor, c.vendor);
        assert_eq!(back.tls, c.tls);
        let mut want = c.raw_section().unwrap().clone();
        want.as_object_mut().unwrap().remove("session_token");
        assert_eq!(back.raw_section().unwrap(), &want);
    }

    #[test]
    fn vary_makes_string_fields_unique_and_names_a_missing_one() {
        let c = config(json!({"customer": "c", "n": 1, "base_url": "http://127.0.0.1:1"}));
        let v = vary(&c, &["customer".to_owned()], "r1-7").unwrap();
        assert_eq!(v.raw_section().unwrap()["customer"], "c-r1-7");
        assert_eq!(v.raw_section().unwrap()["base_url"], "http://127.0.0.1:1");
        let err = vary(&c, &["n".to_owned()], "x").unwrap_err().to_string();
        assert!(err.contains("no string field `n`"), "{err}");
        assert_eq!(vary(&c, &[], "x").unwrap(), c);
    }

    #[test]
    fn hosts_come_from_urls_and_bare_domain_names() {
        let c = config(json!({
            "base_url": "https://api.mypurecloud.ie/v2",
            "ws": "ws://[::1]:80/x",
            "region": "Euw2.Pure.Cloud",
            "ip": "127.0.0.1",
            "deployment_id": "4c1a-99",
            "email": "dana@example.com",
            "nested": {"list": ["http://localhost:1/a"]},
            "version": "1.2",
            "port": 80,
        }));
        assert_eq!(
            hosts(&c),
            [
                "127.0.0.1",
                "::1",
                "api.mypurecloud.ie",
                "euw2.pure.cloud",
                "localhost"
            ]
        );
    }

    #[tokio::test]
    async fn loopback_check_refuses_remote_and_hostless_targets() {
        let local = config(json!({"base_url": "http://127.0.0.1:9", "u": "ws://localhost:9"}));
        check_loopback(&local).await.unwrap();
        let remote = config(json!({"base_url": "http://192.0.2.7:9"}));
        let err = check_loopback(&remote).await.unwrap_err();
        assert!(err.contains("192.0.2.7 is not a loopback address"), "{err}");
        assert!(err.contains("--allow-remote"), "{err}");
        let none = config(json!({"deployment_id": "x"}));
        let err = check_loopback(&none).await.unwrap_err();
        assert!(err.contains("names no host"), "{err}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert!(
            parse_duration("ten")
                .unwrap_err()
                .contains("expected a duration")
        );
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn memory_figures_come_from_proc() {
        // The peak only grows: read it after the current figure.
        let now = proc_status_kb("/proc/self/status", "VmRSS:").unwrap() * 1024;
        let peak = peak_memory().unwrap();
        assert!(peak >= now && now > 0, "peak {peak} now {now}");
    }
}
