use std::sync::Arc;

use super::*;

/// What the probe adapter supports: chat and token refresh, nothing else.
const PROBE_CAPS: Capabilities = Capabilities {
    chat: true,
    token_refresh: true,
    ..Capabilities::NONE
};

/// A test double of the guard's input: answers every call that reaches it with a
/// `Rejected { code: "probe" }`, so a test tells "the guard refused" from "the adapter ran".
#[derive(Debug)]
struct Probe {
    bus: EventBus,
}

fn reached() -> Error {
    Error::Rejected {
        vendor: Vendor::Genesys,
        code: "probe".into(),
        message: "the call reached the adapter".into(),
        retry_after: None,
    }
}

#[async_trait]
impl Session for Probe {
    fn vendor(&self) -> Vendor {
        Vendor::Genesys
    }

    fn capabilities(&self) -> Capabilities {
        PROBE_CAPS
    }

    fn events(&self) -> EventStream {
        self.bus.subscribe()
    }

    async fn start_chat(&self, _request: ChatRequest) -> Result<Arc<dyn Engagement>> {
        Err(reached())
    }

    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>> {
        Err(reached())
    }

    async fn start_call(&self, _request: CallRequest) -> Result<Arc<dyn CallSession>> {
        Err(reached())
    }

    async fn set_token(&self, _token: Secret) -> Result<()> {
        Err(reached())
    }

    async fn keep_alive(&self) -> Result<()> {
        Err(reached())
    }

    async fn shutdown(&self) -> Result<()> {
        Err(reached())
    }
}

const PROBE: AdapterEntry = AdapterEntry {
    vendor: Vendor::Genesys,
    profiles: || vec![("probe", PROBE_CAPS)],
    capabilities: |_| Ok(PROBE_CAPS),
    connect: |_config| {
        Box::pin(async {
            Ok(Box::new(Probe {
                bus: EventBus::default(),
            }) as Box<dyn Session>)
        })
    },
};

fn genesys_config() -> Config {
    Config::from_toml("vendor = \"genesys\"\n[genesys]\ndeployment_id = \"d-1\"\n").unwrap()
}

fn is_probe(e: &Error) -> bool {
    matches!(e, Error::Rejected { code, .. } if code == "probe")
}

fn invalid_vendor_reason(e: Error) -> String {
    match e {
        Error::InvalidInput { field, reason, .. } => {
            assert_eq!(field, "vendor");
            reason
        }
        other => panic!("expected InvalidInput on `vendor`, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_wraps_the_session_in_the_capability_guard() {
    let session = connect_with(&[PROBE], &genesys_config()).await.unwrap();
    assert!(format!("{session:?}").starts_with("Guarded"));
    assert_eq!(session.vendor(), Vendor::Genesys);
    assert_eq!(session.capabilities(), PROBE_CAPS);

    // Outside the capabilities: the guard answers, the adapter is never called.
    let e = session
        .start_call(CallRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        Error::Unsupported {
            vendor: Vendor::Genesys,
            feature: Feature::CallsAudio
        }
    ));
    let e = session.keep_alive().await.unwrap_err();
    assert!(matches!(
        e,
        Error::Unsupported {
            feature: Feature::KeepAlive,
            ..
        }
    ));
    let request = ChatRequest {
        bot_history: vec![BotTurn {
            role: Role::Bot,
            text: "Hi, how can I help?".into(),
            time: Timestamp(0),
        }],
        ..ChatRequest::default()
    };
    let e = session.start_chat(request).await.unwrap_err();
    assert!(matches!(
        e,
        Error::Unsupported {
            feature: Feature::BotHistoryHandoff,
            ..
        }
    ));

    // Supported but invalid input: the guard names the field.
    let e = session.set_token(Secret::new("")).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { ref field, .. } if field == "token"));
    let request = ChatRequest {
        first_message: Some("  ".into()),
        ..ChatRequest::default()
    };
    let e = session.start_chat(request).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { ref field, .. } if field == "first_message"));

    // Supported and valid: the call goes through to the adapter.
    let e = session
        .start_chat(ChatRequest::default())
        .await
        .unwrap_err();
    assert!(is_probe(&e), "{e:?}");
    let e = session.set_token(Secret::new("jwt")).await.unwrap_err();
    assert!(is_probe(&e), "{e:?}");
    let e = session.shutdown().await.unwrap_err();
    assert!(is_probe(&e), "{e:?}");
}

#[tokio::test]
async fn connect_with_names_the_given_adapters_when_the_vendor_is_missing() {
    let config = Config::from_toml("vendor = \"avaya\"\n[avaya]\n").unwrap();
    let e = connect_with(&[PROBE], &config).await.unwrap_err();
    assert_eq!(e.vendor(), Some(Vendor::Avaya));
    assert_eq!(
        invalid_vendor_reason(e),
        "no adapter for Avaya Experience Platform among the given ones (genesys)"
    );
    let e = connect_with(&[], &config).await.unwrap_err();
    assert!(invalid_vendor_reason(e).ends_with("(none)"));
}

#[test]
fn a_vendor_whose_feature_is_off_names_the_feature_to_enable() {
    let status = status_in(Vendor::Genesys, &[]);
    assert!(matches!(status, AdapterStatus::FeatureOff));
    let e = unavailable(Vendor::Genesys, &[PROBE]);
    assert_eq!(
        e.to_string(),
        "genesys: invalid `vendor`: the Genesys Cloud adapter is not compiled in: \
         enable the cc-sdk feature \"genesys\" (compiled-in adapters: genesys)"
    );
    assert!(
        invalid_vendor_reason(unavailable(Vendor::Tvox, &[]))
            .ends_with("(compiled-in adapters: none)")
    );
}

#[test]
fn a_compiled_in_adapter_is_available() {
    let status = status_in(Vendor::Genesys, &[PROBE]);
    assert_eq!(status.entry().map(|e| e.vendor), Some(Vendor::Genesys));
    assert!(AdapterStatus::FeatureOff.entry().is_none());
}

#[test]
fn the_registry_agrees_with_the_cargo_features() {
    for entry in adapters() {
        assert!(
            feature_enabled(entry.vendor),
            "{} without its feature",
            entry.vendor
        );
        assert!(
            !(entry.profiles)().is_empty(),
            "{} has no transport",
            entry.vendor
        );
    }
    for vendor in Vendor::ALL {
        assert_eq!(cargo_feature(vendor), vendor.key());
        match adapter_status(vendor) {
            AdapterStatus::Available(entry) => assert_eq!(entry.vendor, vendor),
            AdapterStatus::FeatureOff => {
                assert!(!feature_enabled(vendor));
                let reason = invalid_vendor_reason(adapter(vendor).unwrap_err());
                assert!(
                    reason.contains(&format!("enable the cc-sdk feature \"{vendor}\"")),
                    "{reason}"
                );
            }
        }
    }
}

/// Built without the `tetherfi` feature (`cargo test -p cc-sdk`), connecting to Tetherfi names
/// the feature to enable.
#[cfg(not(feature = "tetherfi"))]
#[tokio::test]
async fn connect_refuses_a_vendor_whose_feature_is_off() {
    let config = Config::from_toml("vendor = \"tetherfi\"\n[tetherfi]\n").unwrap();
    for e in [
        connect(&config).await.unwrap_err(),
        capabilities(&config).unwrap_err(),
    ] {
        let reason = invalid_vendor_reason(e);
        assert!(
            reason.starts_with(
                "the Tetherfi adapter is not compiled in: enable the cc-sdk feature \"tetherfi\""
            ),
            "{reason}"
        );
    }
}

#[test]
fn an_unknown_vendor_in_the_config_names_the_field_and_the_known_vendors() {
    let e = Config::from_toml("vendor = \"acme\"\n[acme]\n").unwrap_err();
    let reason = invalid_vendor_reason(e);
    assert!(reason.contains("acme"), "{reason}");
    for vendor in Vendor::ALL {
        assert!(reason.contains(vendor.key()), "{reason}");
    }
}
