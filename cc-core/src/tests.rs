use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use static_assertions::{assert_impl_all, assert_obj_safe};

use super::*;

assert_obj_safe!(Session, Engagement, CallSession, HistoryPager);
assert_impl_all!(Event: Clone, Send, Sync);
assert_impl_all!(Error: Send, Sync);
assert_impl_all!(EventStream: Send, Unpin);
assert_impl_all!(Config: Send, Sync, Clone);

#[test]
fn features_mirror_capability_fields() {
    let all = Capabilities {
        chat: true,
        typing_out: true,
        calls_video: true,
        ..Capabilities::NONE
    };
    assert!(all.supports(Feature::Chat));
    assert!(all.supports(Feature::TypingOut));
    assert!(all.supports(Feature::CallsVideo));
    assert!(!all.supports(Feature::CallsAudio));
    assert_eq!(
        all.features().collect::<Vec<_>>(),
        vec![Feature::Chat, Feature::TypingOut, Feature::CallsVideo]
    );
    assert_eq!(Feature::TypingOut.name(), "typing_out");
    assert_eq!(
        Feature::TypingOut.description(),
        " Send typing indicators to the agent."
    );
    assert_eq!(Capabilities::default(), Capabilities::NONE);
    // Every feature has a distinct name.
    let mut names: Vec<_> = Feature::ALL.iter().map(|f| f.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Feature::ALL.len());
}

#[test]
fn error_display_names_vendor_and_code() {
    let e = Error::Rejected {
        vendor: Vendor::Genesys,
        code: "4029".into(),
        message: "too many requests".into(),
        retry_after: Some(Duration::from_secs(1)),
    };
    assert_eq!(
        e.to_string(),
        "genesys rejected the request (4029): too many requests"
    );
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(e.vendor_code(), Some("4029"));
    assert_eq!(e.kind(), ErrorKind::Rejected);

    let e = Error::unsupported(Vendor::Avaya, Feature::CallsAudio);
    assert_eq!(e.to_string(), "avaya does not support calls_audio");
    assert!(!e.is_retryable());

    let e = Error::invalid(None, "vendor", "missing");
    assert_eq!(e.to_string(), "invalid `vendor`: missing");
    assert_eq!(e.vendor(), None);

    let e = Error::transport(Vendor::Tvox, "connect", std::io::Error::other("refused"));
    assert!(e.is_retryable());
    assert_eq!(e.to_string(), "tvox: transport failure in connect");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn vendor_parses_case_insensitively() {
    assert_eq!("Genesys".parse::<Vendor>().unwrap(), Vendor::Genesys);
    let err = "nope".parse::<Vendor>().unwrap_err();
    assert!(err.to_string().contains("nope"));
    assert!(err.to_string().contains("tetherfi"));
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SampleSection {
    deployment_id: String,
    region: Option<String>,
    #[serde(default)]
    routing: SampleRouting,
    password: Option<Secret>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SampleRouting {
    priority: Option<i32>,
}

fn field_of(e: Error) -> String {
    match e {
        Error::InvalidInput { field, .. } => field.into_owned(),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn config_errors_name_the_field() {
    let e = Config::from_toml("[genesys]\nx = 1").unwrap_err();
    assert_eq!(field_of(e), "vendor");

    let e = Config::from_toml("vendor = \"acme\"").unwrap_err();
    assert_eq!(field_of(e), "vendor");

    let e = Config::from_toml("vendor = \"genesys\"").unwrap_err();
    assert_eq!(field_of(e), "genesys");

    let c = Config::from_toml("vendor = \"genesys\"\n[genesys]\nregion = \"x\"").unwrap();
    let e = c.section::<SampleSection>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "genesys: invalid `genesys.deployment_id`: missing"
    );

    let c = Config::from_toml("vendor = \"genesys\"\n[genesys]\ndeployment_id = \"d\"\n[genesys.routing]\npriority = \"high\"").unwrap();
    let e = c.section::<SampleSection>().unwrap_err();
    assert_eq!(field_of(e), "genesys.routing.priority");

    let c = Config::from_toml("vendor = \"genesys\"\n[genesys]\ndeployment_id = \"d\"\nbogus = 1")
        .unwrap();
    let e = c.section::<SampleSection>().unwrap_err();
    assert_eq!(field_of(e), "genesys.bogus");

    let e = Config::from_toml("vendor = \"genesys\"\n[genesys]\n[tls]\nca = 1").unwrap_err();
    assert_eq!(field_of(e), "tls.ca");
}

#[test]
fn config_from_json_and_env() {
    let c = Config::from_json(
        r#"{"vendor":"genesys","genesys":{"deployment_id":"d","routing":{"priority":3}}}"#,
    )
    .unwrap();
    let s: SampleSection = c.section().unwrap();
    assert_eq!(s.routing.priority, Some(3));

    let c = Config::from_env_vars([
        ("HOME", "/root"),
        ("CC_VENDOR", "genesys"),
        ("CC_GENESYS__DEPLOYMENT_ID", "\"12345\""),
        ("CC_GENESYS__ROUTING__PRIORITY", "7"),
        ("CC_GENESYS__REGION", "mypurecloud.ie"),
        ("CC_TLS__CA_FILE", "/tmp/ca.pem"),
    ])
    .unwrap();
    let s: SampleSection = c.section().unwrap();
    assert_eq!(s.deployment_id, "12345");
    assert_eq!(s.routing.priority, Some(7));
    assert_eq!(s.region.as_deref(), Some("mypurecloud.ie"));
    assert_eq!(
        c.tls.ca_file.as_deref(),
        Some(std::path::Path::new("/tmp/ca.pem"))
    );

    let e = Config::from_env_vars([("CC_GENESYS__DEPLOYMENT_ID", "d")]).unwrap_err();
    assert_eq!(field_of(e), "vendor");
}

#[test]
fn secrets_never_print() {
    let c = Config::from_toml(
        "vendor = \"genesys\"\n[genesys]\ndeployment_id = \"d\"\npassword = \"hunter2\"",
    )
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("password"), "{dbg}");
    let s: SampleSection = c.section().unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert_eq!(s.password.unwrap().expose(), "hunter2");
    assert_eq!(
        format!("{:?}", Secret::new("jwt.abc")),
        "Secret([REDACTED])"
    );
}

#[test]
fn client_message_ids_are_v7_and_round_trip() {
    let a = ClientMessageId::new();
    let b = ClientMessageId::new();
    assert!(a < b || a.as_u128() >> 80 == b.as_u128() >> 80);
    let text = a.to_string();
    assert_eq!(&text[14..15], "7", "{text}");
    assert_eq!(text.parse::<ClientMessageId>().unwrap(), a);
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<ClientMessageId>(&json).unwrap(), a);
    assert!("x".parse::<ClientMessageId>().is_err());
}

#[tokio::test]
async fn lagged_subscriber_is_told_how_many_it_missed() {
    let bus = EventBus::new(4);
    let mut slow = bus.subscribe();
    for _ in 0..10 {
        bus.emit(Event::TokenExpired);
    }
    let first = slow.next().await.unwrap();
    assert!(matches!(first, Event::Lagged { missed: 6 }), "{first:?}");
    for _ in 0..4 {
        assert!(matches!(slow.next().await.unwrap(), Event::TokenExpired));
    }
    drop(bus);
    assert!(slow.next().await.is_none());
}

#[tokio::test]
async fn engagement_streams_filter_other_engagements() {
    let bus = EventBus::default();
    let a = EngagementId::from("a");
    let mut sub = bus.subscribe_engagement(a.clone());
    bus.emit(Event::Queued {
        engagement: "b".into(),
        position: Some(1),
        expected_wait: None,
    });
    bus.emit(Event::Connection(ConnectionState::Connected));
    bus.emit(Event::Queued {
        engagement: a.clone(),
        position: Some(2),
        expected_wait: None,
    });
    assert!(matches!(sub.next().await.unwrap(), Event::Connection(_)));
    match sub.next().await.unwrap() {
        Event::Queued {
            engagement,
            position,
            ..
        } => {
            assert_eq!(engagement, a);
            assert_eq!(position, Some(2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn event_kinds_cover_every_variant() {
    assert_eq!(Event::TokenExpired.kind(), EventKind::TokenExpired);
    assert_eq!(Event::Lagged { missed: 1 }.kind().name(), "Lagged");
    assert!(
        EventKind::ALL
            .iter()
            .all(|k| !k.description().trim().is_empty())
    );
    let e = Event::error(Error::protocol(Vendor::Genesys, "frame", "bad"));
    assert_eq!(e.kind(), EventKind::Error);
    let m = Arc::new(Message {
        id: None,
        client_id: None,
        engagement: "e".into(),
        sender: Participant::new(Role::Agent),
        content: Content::text("hi"),
        server_time: None,
        local_time: Timestamp(5),
        state: DeliveryState::Sent,
        hidden: false,
    });
    assert_eq!(
        Event::MessageReceived(m)
            .engagement()
            .map(EngagementId::as_str),
        Some("e")
    );
}

#[test]
fn rfc3339_round_trips_and_rejects_garbage() {
    let t = Timestamp::parse_rfc3339("2026-11-23T12:00:00.123Z").unwrap();
    assert_eq!(t, Timestamp(1_795_435_200_123));
    assert_eq!(t.to_rfc3339(), "2026-11-23T12:00:00.123Z");
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-23T13:00:00.123456+01:00"),
        Some(t)
    );
    assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
    assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
    // The liberties vendors take: a space for the `T`, an offset without its colon, no
    // offset (UTC).
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-23T13:00:00.123+0100"),
        Some(t)
    );
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-23T10:30:00.123-0130"),
        Some(t)
    );
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-23 12:00:00.123Z"),
        Some(t)
    );
    assert_eq!(Timestamp::parse_rfc3339("2026-11-23T12:00:00.123"), Some(t));
    assert_eq!(
        Timestamp::parse_rfc3339("2026-11-23t12:00:00.123z"),
        Some(t)
    );
    for bad in [
        "",
        "2026-11-23",
        "2026-13-01T00:00:00Z",
        "yesterday",
        "2026-11-23T12:00:00x",
        "2026-11-23T12:00:00+0",
        "2026-11-23T12:00:00+01000",
        "2026-11-23T12:00:00.",
    ] {
        assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn the_guard_passes_resume_settings_through() {
    #[derive(Debug)]
    struct Resumable;

    #[async_trait::async_trait]
    impl Session for Resumable {
        fn vendor(&self) -> Vendor {
            Vendor::Genesys
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::NONE
        }
        fn events(&self) -> EventStream {
            EventBus::default().subscribe()
        }
        async fn start_chat(&self, _: ChatRequest) -> Result<std::sync::Arc<dyn Engagement>> {
            Err(Error::unsupported(Vendor::Genesys, Feature::Chat))
        }
        async fn engagements(&self) -> Result<Vec<std::sync::Arc<dyn Engagement>>> {
            Ok(Vec::new())
        }
        fn resume_settings(&self) -> Option<Secret> {
            Some(Secret::new(r#"{"session_token":"t"}"#.to_owned()))
        }
        async fn shutdown(&self) -> Result<()> {
            Ok(())
        }
    }

    let guarded = guard::Guarded::new(Box::new(Resumable));
    let settings = guarded.resume_settings().expect("forwarded");
    assert_eq!(settings.expose(), r#"{"session_token":"t"}"#);
    assert!(!format!("{settings:?}").contains("session_token"));
}

#[tokio::test]
async fn the_ring_holds_only_unread_events() {
    let bus = EventBus::new(8);
    assert_eq!(bus.capacity(), 8);
    // Nobody subscribed: nothing is kept.
    bus.emit(Event::TokenExpired);
    assert_eq!(bus.buffered(), 0);
    let mut a = bus.subscribe();
    let mut b = bus.subscribe();
    assert_eq!(bus.subscribers(), 2);
    for _ in 0..3 {
        bus.emit(Event::TokenExpired);
    }
    assert_eq!(bus.buffered(), 3);
    for _ in 0..3 {
        assert!(matches!(a.next().await.unwrap(), Event::TokenExpired));
    }
    // `b` has not read them yet.
    assert_eq!(bus.buffered(), 3);
    assert!(matches!(b.next().await.unwrap(), Event::TokenExpired));
    assert_eq!(bus.buffered(), 2);
    // A dropped subscriber no longer holds events back.
    drop(b);
    assert_eq!(bus.buffered(), 0);
    assert_eq!(bus.subscribers(), 1);
    // A late subscriber starts with the next event.
    bus.emit(Event::Connection(ConnectionState::Connected));
    let mut late = bus.subscribe();
    bus.emit(Event::TokenExpired);
    assert!(matches!(late.next().await.unwrap(), Event::TokenExpired));
    assert!(matches!(a.next().await.unwrap(), Event::Connection(_)));
    assert!(matches!(a.next().await.unwrap(), Event::TokenExpired));
    assert_eq!(bus.buffered(), 0);
}

#[tokio::test]
async fn only_the_slow_subscriber_lags() {
    let bus = EventBus::new(4);
    let mut fast = bus.subscribe();
    let mut slow = bus.subscribe();
    for i in 0..10u32 {
        bus.emit(Event::Queued {
            engagement: "e".into(),
            position: Some(i),
            expected_wait: None,
        });
        match fast.next().await.unwrap() {
            Event::Queued { position, .. } => assert_eq!(position, Some(i)),
            other => panic!("{other:?}"),
        }
    }
    // The ring never holds more than its capacity.
    assert_eq!(bus.buffered(), 4);
    assert!(matches!(
        slow.next().await.unwrap(),
        Event::Lagged { missed: 6 }
    ));
    for i in 6..10u32 {
        match slow.next().await.unwrap() {
            Event::Queued { position, .. } => assert_eq!(position, Some(i)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(bus.buffered(), 0);
}

#[tokio::test]
async fn a_stream_reads_what_is_left_after_the_bus_is_gone() {
    let bus = EventBus::default();
    let mut sub = bus.subscribe();
    let clone = bus.clone();
    bus.emit(Event::TokenExpired);
    drop(bus);
    // One clone is still alive: the stream waits.
    assert!(futures::FutureExt::now_or_never(sub.next()).is_some());
    assert!(futures::FutureExt::now_or_never(sub.next()).is_none());
    clone.emit(Event::TokenExpired);
    drop(clone);
    assert!(matches!(sub.next().await.unwrap(), Event::TokenExpired));
    assert!(sub.next().await.is_none());
}

#[test]
fn a_waiting_stream_wakes_for_each_event_across_threads() {
    let bus = EventBus::new(2);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut s = bus.subscribe();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut seen = 0u64;
                    while let Some(ev) = s.next().await {
                        match ev {
                            Event::Lagged { missed } => seen += missed,
                            _ => seen += 1,
                        }
                    }
                    seen
                })
            })
        })
        .collect();
    for i in 0..2000 {
        bus.emit(Event::TokenExpired);
        if i % 7 == 0 {
            std::thread::yield_now();
        }
    }
    drop(bus);
    for r in readers {
        // Every event is either read or counted as missed: none vanishes unannounced.
        assert_eq!(r.join().unwrap(), 2000);
    }
}

#[tokio::test]
async fn a_ring_that_grew_gives_its_memory_back() {
    let bus = EventBus::new(1000);
    let mut sub = bus.subscribe();
    for _ in 0..500 {
        bus.emit(Event::TokenExpired);
    }
    assert_eq!(bus.buffered(), 500);
    for _ in 0..500 {
        sub.next().await.unwrap();
    }
    assert_eq!(bus.buffered(), 0);
    assert!(format!("{bus:?}").contains("buffered: 0"), "{bus:?}");
}
