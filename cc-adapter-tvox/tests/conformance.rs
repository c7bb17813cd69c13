//! The cc conformance suite against the TVox simulator, through the testkit's fault proxy,
//! plus TVox's own scenarios (`tvox::extra_*`): heartbeat loss and reconnect without loss,
//! live service status, the queue → play → connecting → connected steps, bot handoff, the
//! widget extension, the inactivity and max-duration timers, two chats at once, leave and
//! resume from a new session, video sessions, the vendor's refusals and a restart that
//! loses the chats. Snapshots of the frames the client sends are in
//! `tests/snapshots/<scenario>@tvox.snap` (heartbeat pings and subscription cancels left
//! out: whether they are in depends on timing).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cc_adapter_tvox::sim::{SimOptions, SimService, Simulator};
use cc_adapter_tvox::wire::{
    CallState as WireCallState, ConfigurationStatus, IceGatherPolicy, MultiChannelType,
    ServiceStatusValue, TrickleIcePolicy, WebrtcConfig,
};
use cc_adapter_tvox::{CAPABILITIES, TvoxConfig, TvoxEngagement, TvoxSession};
use cc_adapter_tvox::{MediaSessionEvent, MediaSessionStream};
use cc_core::{
    Availability, BotTurn, ConnectionState, Content, Engagement, EngagementState, ErrorKind, Event,
    Initiator, MessageId, OpeningHours, OpeningWindow, Role, Session, StatusQuery, Timestamp,
    TlsSettings, Vendor, Weekday,
};
use cc_testkit::snapshot::{self, SnapshotFrames, SnapshotSpec};
use cc_testkit::{Events, Frame, Proxy, Received, SimChat, SimControl, Started, Target};
use futures::StreamExt;
use libtest_mimic::{Arguments, Failed, Trial};

const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");
const STEP: Duration = Duration::from_secs(5);
/// Which event a reconnect resumes from depends on whether the last echo beat the cut.
const SINCE: &str = "[].body.params.sinceEventId";

fn sim_options() -> SimOptions {
    SimOptions {
        heartbeat: Duration::from_millis(300),
        tick: Duration::from_millis(10),
        ..SimOptions::default()
    }
}

fn client_config(sim: &Simulator, base: &str) -> TvoxConfig {
    let mut c = sim.config_for(base);
    c.retry.interval_ms = 100;
    c.connect_timeout_ms = 5000;
    c.request_timeout_ms = 5000;
    c
}

async fn start() -> cc_core::Result<Started> {
    let sim = Simulator::start(sim_options()).await?;
    let proxy = Proxy::start(sim.addr())
        .await
        .map_err(|e| cc_core::Error::transport(Vendor::Tvox, "proxy", e))?;
    let cfg = client_config(&sim, &format!("http://{}", proxy.addr()));
    let session = TvoxSession::connect(cfg.clone(), &TlsSettings::default()).await?;
    let first = session.clone();
    Ok(Started::new(Box::new(session), Arc::new(sim))
        .with_proxy(proxy)
        .with_reopen(move || {
            let (cfg, token) = (cfg.clone(), first.resume_token());
            async move {
                let s = TvoxSession::connect_with(cfg, &TlsSettings::default(), token).await?;
                Ok(Box::new(s) as Box<dyn Session>)
            }
        }))
}

/// Leaves out of snapshots the frames whose presence depends on timing: heartbeats, and the
/// `subscription.cancel` a chat's end triggers (it races the scenario's last step; the
/// cancels are checked in `extra_widget_extension` and the engine tests instead).
fn no_pings(f: &Frame) -> bool {
    !matches!(
        f.body.get("method").and_then(|m| m.as_str()),
        Some("ping" | "subscription.cancel")
    )
}

// ---- TVox's own scenarios ----

type R = Result<(), String>;

struct Ctx {
    sim: Arc<Simulator>,
    proxy: Proxy,
    session: TvoxSession,
    events: Events,
}

async fn setup(opts: SimOptions, tweak: fn(&mut TvoxConfig)) -> Result<Ctx, String> {
    let sim = Arc::new(Simulator::start(opts).await.map_err(|e| e.to_string())?);
    let proxy = Proxy::start(sim.addr()).await.map_err(|e| e.to_string())?;
    let mut cfg = client_config(&sim, &format!("http://{}", proxy.addr()));
    tweak(&mut cfg);
    let session = TvoxSession::connect(cfg, &TlsSettings::default())
        .await
        .map_err(|e| e.to_string())?;
    let events = Events::record("session", session.events(), STEP);
    Ok(Ctx {
        sim,
        proxy,
        session,
        events,
    })
}

fn text(e: &Event) -> Option<&str> {
    match e {
        Event::MessageReceived(m) | Event::MessageSent(m) => m.content.as_text(),
        _ => None,
    }
}

impl Ctx {
    async fn chat(&mut self) -> Result<(Arc<dyn Engagement>, SimChat), String> {
        let eng = self
            .session
            .start_chat(cc_testkit::default_chat_request())
            .await
            .map_err(|e| format!("start chat: {e}"))?;
        let chat = self
            .sim
            .wait_for_chat(STEP)
            .await
            .map_err(|e| e.to_string())?;
        Ok((eng, chat))
    }

    async fn expect(
        &mut self,
        step: &str,
        pred: impl FnMut(&Event) -> bool,
    ) -> Result<Event, String> {
        self.events
            .expect(step, pred)
            .await
            .map_err(|f| f.to_string())
    }

    async fn received_text(&self, chat: &SimChat, want: &str) -> R {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let got = self.sim.received(chat).await.map_err(|e| e.to_string())?;
            if got
                .iter()
                .any(|r| matches!(r, Received::Text { text, .. } if text == want))
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("the simulator never received {want:?}: {got:?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn snapshot(&self, name: &str) {
        let frames: Vec<Frame> = self.sim.frames().into_iter().filter(no_pings).collect();
        let doc = snapshot::normalize(&frames, SnapshotFrames::ClientToServer);
        let dir = std::path::PathBuf::from(SNAPSHOTS);
        snapshot::assert_frames_snapshot(
            &SnapshotSpec {
                dir: &dir,
                name,
                suffix: "tvox",
                redactions: &[(SINCE, "[last event seen]")],
            },
            &doc,
        );
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> R {
    if cond { Ok(()) } else { Err(what()) }
}

fn texts_once_in_order(got: &[Received], want: &[&str]) -> R {
    let texts: Vec<&str> = got
        .iter()
        .filter_map(|r| match r {
            Received::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    for w in want {
        let n = texts.iter().filter(|t| *t == w).count();
        ensure(n == 1, || {
            format!("{w:?} reached the server {n} times: {texts:?}")
        })?;
    }
    let order: Vec<&str> = texts.iter().copied().filter(|t| want.contains(t)).collect();
    ensure(order == want, || {
        format!("server order {order:?}, expected {want:?}")
    })
}

/// The link goes half-open: the server's frames stop arriving, heartbeats go unanswered.
/// The client notices after two missed pongs, reconnects with its resume token and
/// `sinceEventId`; the agent message pushed meanwhile arrives once, the customer's
/// messages whose answers were lost reach the server once.
async fn heartbeat_loss(mut c: Ctx) -> R {
    let (eng, chat) = c.chat().await?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    c.expect("agent joins", |e| {
        matches!(e, Event::ParticipantJoined { .. })
    })
    .await?;
    eng.send(Content::text("before"))
        .await
        .map_err(|e| e.to_string())?;
    c.received_text(&chat, "before").await?;
    c.sim.mute_connections();
    c.sim
        .agent_says(&chat, "while muted")
        .await
        .map_err(|e| e.to_string())?;
    eng.send(Content::text("sent while muted"))
        .await
        .map_err(|e| e.to_string())?;
    c.received_text(&chat, "sent while muted").await?;
    c.expect("Reconnecting after missed pongs", |e| {
        matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await?;
    c.expect("Connected again", |e| {
        matches!(e, Event::Connection(ConnectionState::Connected))
    })
    .await?;
    c.expect(
        "the agent's message pushed while muted",
        |e| matches!(e, Event::MessageReceived(m) if m.content.as_text() == Some("while muted")),
    )
    .await?;
    eng.send(Content::text("after"))
        .await
        .map_err(|e| e.to_string())?;
    c.received_text(&chat, "after").await?;
    let got = c.sim.received(&chat).await.map_err(|e| e.to_string())?;
    texts_once_in_order(&got, &["before", "sent while muted", "after"])?;
    for t in ["before", "sent while muted", "after", "while muted"] {
        let n = eng
            .transcript()
            .iter()
            .filter(|m| m.content.as_text() == Some(t))
            .count();
        ensure(n == 1, || format!("{t:?} is {n} times in the transcript"))?;
    }
    c.events.drain();
    let received = c
        .events
        .seen()
        .iter()
        .filter(|e| matches!(e, Event::MessageReceived(m) if m.content.as_text() == Some("while muted")))
        .count();
    ensure(received == 1, || {
        format!("\"while muted\" received {received} times")
    })?;
    // The reconnect presented the resume token of the first handshake.
    let hellos: Vec<serde_json::Value> = c
        .sim
        .frames()
        .into_iter()
        .filter(|f| f.body["method"] == "widget.hello")
        .map(|f| f.body)
        .collect();
    ensure(hellos.len() == 2, || format!("{} hellos", hellos.len()))?;
    ensure(hellos[1]["params"]["resumeToken"].is_string(), || {
        format!("second hello without resume token: {}", hellos[1])
    })?;
    c.snapshot("extra_heartbeat_loss");
    Ok(())
}

/// Status per channel, live: the neutral query, the extension's stream and the vendor
/// events follow agents logging out and the calendar closing.
async fn service_status_live(mut c: Ctx) -> R {
    let s = c
        .session
        .service_status(StatusQuery::default())
        .await
        .map_err(|e| e.to_string())?;
    ensure(s.availability == Availability::Open, || format!("{s:?}"))?;
    let mut live = c
        .session
        .watch_service_status(MultiChannelType::Chat, "support")
        .await
        .map_err(|e| e.to_string())?;
    let first = tokio::time::timeout(STEP, live.next())
        .await
        .map_err(|_| "no status")?;
    ensure(
        first.as_ref().and_then(|s| s.status.clone()) == Some(ServiceStatusValue::Active),
        || format!("{first:?}"),
    )?;
    c.sim
        .set_agents(MultiChannelType::Chat, "support", 0)
        .map_err(|e| e.to_string())?;
    let next = tokio::time::timeout(STEP, live.next())
        .await
        .map_err(|_| "no push")?;
    ensure(
        next.as_ref().and_then(|s| s.status.clone()) == Some(ServiceStatusValue::OutOfService),
        || format!("{next:?}"),
    )?;
    c.expect("vendor event for the change", |e| {
        matches!(e, Event::Vendor { name, payload, .. }
            if &**name == "tvox.service_status" && payload["status"] == "OUT_OF_SERVICE")
    })
    .await?;
    let s = c
        .session
        .service_status(StatusQuery {
            queue: Some("support".into()),
        })
        .await
        .map_err(|e| e.to_string())?;
    ensure(s.availability == Availability::OutOfService, || {
        format!("{s:?}")
    })?;
    // Closed by calendar: a window on another day than the pinned clock's.
    let monday_noon = Timestamp(1_700_481_600_000); // 2023-11-20T12:00:00Z, a Monday
    c.sim.set_clock(Some(monday_noon));
    c.sim
        .set_calendar(
            MultiChannelType::Chat,
            "support",
            Some(OpeningHours {
                time_zone: Some("UTC".into()),
                windows: vec![OpeningWindow {
                    day: Weekday::Tue,
                    open_minute: 9 * 60,
                    close_minute: 17 * 60,
                }],
            }),
        )
        .map_err(|e| e.to_string())?;
    let next = tokio::time::timeout(STEP, live.next())
        .await
        .map_err(|_| "no push")?;
    ensure(
        next.as_ref().and_then(|s| s.status.clone()) == Some(ServiceStatusValue::Overtime),
        || format!("{next:?}"),
    )?;
    let s = c
        .session
        .service_status(StatusQuery::default())
        .await
        .map_err(|e| e.to_string())?;
    ensure(s.availability == Availability::ClosedByCalendar, || {
        format!("{s:?}")
    })?;
    // Live across a reconnect: the subscription is renewed and changes keep coming.
    c.proxy.cut_all();
    c.expect("Connected again", |e| {
        matches!(e, Event::Connection(ConnectionState::Connected))
    })
    .await?;
    c.sim.set_clock(Some(Timestamp(monday_noon.0 + 86_400_000))); // Tuesday noon
    c.sim
        .set_agents(MultiChannelType::Chat, "support", 2)
        .map_err(|e| e.to_string())?;
    let next = tokio::time::timeout(STEP, async {
        loop {
            match live.next().await {
                Some(s) if s.status == Some(ServiceStatusValue::Active) => return Some(s),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .map_err(|_| "no ACTIVE after the reconnect")?;
    ensure(next.is_some(), || "stream ended".into())?;
    // An unmonitored service is refused before anything goes on the wire.
    let err = c
        .session
        .service_status(StatusQuery {
            queue: Some("VIDEO:nope".into()),
        })
        .await
        .unwrap_err();
    ensure(err.kind() == ErrorKind::InvalidInput, || format!("{err}"))?;
    c.snapshot("extra_service_status_live");
    Ok(())
}

/// QUEUE → PLAY → CONNECTING → CONNECTED, with a message held until CONNECTED.
async fn step_sequence(mut c: Ctx) -> R {
    let (eng, chat) = c.chat().await?;
    let id = eng.id();
    c.expect("Queued on creation", |e| {
        matches!(
            e,
            Event::Queued {
                position: Some(1),
                ..
            }
        )
    })
    .await?;
    eng.send(Content::text("waiting"))
        .await
        .map_err(|e| e.to_string())?;
    c.sim
        .queue(&chat, 2, None)
        .await
        .map_err(|e| e.to_string())?;
    c.expect(
        "Queued at 2",
        |e| matches!(e, Event::Queued { engagement, position: Some(2), .. } if *engagement == id),
    )
    .await?;
    ensure(eng.state() == EngagementState::Queued, || {
        format!("{:?}", eng.state())
    })?;
    c.sim
        .play(&chat, "Please hold, all agents are busy")
        .map_err(|e| e.to_string())?;
    c.expect("PLAY → system message", |e| {
        matches!(e, Event::MessageReceived(m) if m.sender.role == Role::System
            && m.content.as_text() == Some("Please hold, all agents are busy"))
    })
    .await?;
    let got = c.sim.received(&chat).await.map_err(|e| e.to_string())?;
    ensure(got.is_empty(), || format!("sent before CONNECTED: {got:?}"))?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    c.expect("CONNECTING → tvox.step", |e| {
        matches!(e, Event::Vendor { name, payload, .. }
            if &**name == "tvox.step" && payload["step"]["type"] == "CONNECTING")
    })
    .await?;
    c.expect("CONNECTED → agent joined", |e| {
        matches!(e, Event::ParticipantJoined { participant, .. }
            if participant.display_name.as_deref() == Some("Alex Agent"))
    })
    .await?;
    c.received_text(&chat, "waiting").await?;
    c.expect(
        "MessageSent for the held message",
        |e| matches!(e, Event::MessageSent(m) if m.content.as_text() == Some("waiting")),
    )
    .await?;
    c.sim
        .to_url(&chat, "https://example.com/help")
        .map_err(|e| e.to_string())?;
    c.expect("TO_URL → tvox.step with the uri", |e| {
        matches!(e, Event::Vendor { name, payload, .. }
            if &**name == "tvox.step" && payload["step"]["uri"] == "https://example.com/help")
    })
    .await?;
    c.sim
        .transfer(&chat, "Bea Agent")
        .await
        .map_err(|e| e.to_string())?;
    c.expect("transfer: the first agent leaves", |e| {
        matches!(e, Event::ParticipantLeft { participant, .. }
            if participant.display_name.as_deref() == Some("Alex Agent"))
    })
    .await?;
    c.expect("transfer: the second agent joins", |e| {
        matches!(e, Event::ParticipantJoined { participant, .. }
            if participant.display_name.as_deref() == Some("Bea Agent"))
    })
    .await?;
    c.snapshot("extra_step_sequence");
    Ok(())
}

/// The bot conversation replayed in order, bot turns as greeting messages, then the first
/// message, once the agent is connected.
async fn bot_handoff(c: Ctx) -> R {
    let mut req = cc_testkit::default_chat_request();
    req.bot_history = vec![
        BotTurn {
            role: Role::Bot,
            text: "Hi! What can I do for you?".into(),
            time: Timestamp(1_700_000_000_000),
        },
        BotTurn {
            role: Role::Customer,
            text: "My card was blocked".into(),
            time: Timestamp(1_700_000_001_000),
        },
        BotTurn {
            role: Role::Bot,
            text: "Let me get you an agent.".into(),
            time: Timestamp(1_700_000_002_000),
        },
    ];
    req.first_message = Some("Hello, anyone there?".into());
    let eng = c.session.start_chat(req).await.map_err(|e| e.to_string())?;
    let chat = c.sim.wait_for_chat(STEP).await.map_err(|e| e.to_string())?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    c.received_text(&chat, "Hello, anyone there?").await?;
    let log: Vec<(String, bool)> = c
        .sim
        .messages(&chat)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|m| (m.text, m.greeting))
        .collect();
    let want = vec![
        ("Hi! What can I do for you?".to_owned(), true),
        ("My card was blocked".to_owned(), false),
        ("Let me get you an agent.".to_owned(), true),
        ("Hello, anyone there?".to_owned(), false),
    ];
    ensure(log == want, || format!("the server got {log:#?}"))?;
    let roles: Vec<Role> = eng.transcript().iter().map(|m| m.sender.role).collect();
    ensure(
        roles == vec![Role::Bot, Role::Customer, Role::Bot, Role::Customer],
        || format!("transcript roles {roles:?}"),
    )?;
    c.snapshot("extra_bot_handoff");
    Ok(())
}

/// The adapter extension: visited page, channel choice, receipts, recap, channels enabled.
async fn widget_extension(mut c: Ctx) -> R {
    let enabled = c.session.channels_enabled();
    ensure(enabled.get("CHAT") == Some(&true), || {
        format!("{enabled:?}")
    })?;
    c.session
        .visit_uri(
            Some("https://shop.example.com/cart"),
            Some("/cart"),
            Some("Cart"),
        )
        .await
        .map_err(|e| e.to_string())?;
    c.session
        .send_customer_identifier(MultiChannelType::Chat, "support")
        .await
        .map_err(|e| e.to_string())?;
    ensure(c.sim.visits().len() == 1, || {
        format!("{:?}", c.sim.visits())
    })?;
    ensure(
        c.sim.identifiers() == vec![(MultiChannelType::Chat, "support".to_owned())],
        || format!("{:?}", c.sim.identifiers()),
    )?;
    let (eng, chat) = c.chat().await?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    let id = c
        .sim
        .agent_says(&chat, "Here is your answer")
        .await
        .map_err(|e| e.to_string())?;
    c.expect("agent message", |e| text(e) == Some("Here is your answer"))
        .await?;
    // The neutral `mark` is refused (TVox reports no receipts back); the extension sends them.
    let err = eng
        .mark(&MessageId::from(id.as_str()), cc_core::Receipt::Read)
        .await
        .unwrap_err();
    ensure(err.kind() == ErrorKind::Unsupported, || format!("{err}"))?;
    let list = c.session.engagements().await.map_err(|e| e.to_string())?;
    ensure(list.len() == 1, || format!("{list:?}"))?;
    let own: Arc<TvoxEngagement> = c
        .session
        .chat(&eng.id())
        .ok_or("the session does not know its chat")?;
    own.mark_received(&MessageId::from(id.as_str()))
        .await
        .map_err(|e| e.to_string())?;
    own.mark_read(&MessageId::from(id.as_str()))
        .await
        .map_err(|e| e.to_string())?;
    own.send_recap("casey@example.com")
        .await
        .map_err(|e| e.to_string())?;
    let got = c.sim.received(&chat).await.map_err(|e| e.to_string())?;
    ensure(
        got == vec![
            Received::Receipt {
                message_id: id.clone(),
                state: "delivered".into(),
            },
            Received::Receipt {
                message_id: id.clone(),
                state: "read".into(),
            },
        ],
        || format!("{got:?}"),
    )?;
    ensure(c.sim.recaps().len() == 1, || {
        format!("{:?}", c.sim.recaps())
    })?;
    eng.end(None).await.map_err(|e| e.to_string())?;
    c.expect("ended by the customer", |e| {
        matches!(
            e,
            Event::EngagementEnded {
                initiator: Initiator::Customer,
                ..
            }
        )
    })
    .await?;
    // Both monitors of the chat are stopped (`stopNotification`).
    let deadline = tokio::time::Instant::now() + STEP;
    while c.sim.cancelled().len() < 2 {
        ensure(tokio::time::Instant::now() < deadline, || {
            format!("monitors not stopped: {:?}", c.sim.cancelled())
        })?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.snapshot("extra_widget_extension");
    Ok(())
}

/// The simulator's inactivity timer: a warning with the grace left, then the close.
async fn inactivity_timeout(mut c: Ctx) -> R {
    let (eng, chat) = c.chat().await?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    let ev = c
        .expect("IdleWarning", |e| matches!(e, Event::IdleWarning { .. }))
        .await?;
    if let Event::IdleWarning { grace, engagement } = ev {
        ensure(grace <= Duration::from_millis(400), || {
            format!("grace {grace:?}")
        })?;
        ensure(engagement == Some(eng.id()), || format!("{engagement:?}"))?;
    }
    c.expect("closed by the system", |e| {
        matches!(
            e,
            Event::EngagementEnded {
                initiator: Initiator::System,
                ..
            }
        )
    })
    .await?;
    ensure(eng.state() == EngagementState::Ended, || {
        format!("{:?}", eng.state())
    })?;
    c.snapshot("extra_inactivity_timeout");
    Ok(())
}

/// Activity after the warning keeps the chat; the maximum duration still ends it.
async fn max_duration(mut c: Ctx) -> R {
    let (eng, chat) = c.chat().await?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    c.expect("IdleWarning", |e| matches!(e, Event::IdleWarning { .. }))
        .await?;
    eng.send(Content::text("still here"))
        .await
        .map_err(|e| e.to_string())?;
    c.expect("ACTIVE_FROM_TIMEOUT", |e| {
        matches!(e, Event::Vendor { payload, .. } if payload["step"]["type"] == "ACTIVE_FROM_TIMEOUT")
    })
    .await?;
    c.expect("MAX_DURATION_TIMEOUT", |e| {
        matches!(e, Event::Vendor { payload, .. } if payload["step"]["type"] == "MAX_DURATION_TIMEOUT")
    })
    .await?;
    let ev = c
        .expect("ended", |e| matches!(e, Event::EngagementEnded { .. }))
        .await?;
    ensure(
        matches!(
            ev,
            Event::EngagementEnded {
                initiator: Initiator::System,
                ..
            }
        ),
        || format!("{ev:?}"),
    )?;
    c.snapshot("extra_max_duration");
    Ok(())
}

/// Two chats in one session, each with its own agent and messages.
async fn two_chats(mut c: Ctx) -> R {
    let (a, chat_a) = c.chat().await?;
    let (b, chat_b) = c.chat().await?;
    c.sim
        .agent_joins(&chat_a, "Ann")
        .await
        .map_err(|e| e.to_string())?;
    c.sim
        .agent_joins(&chat_b, "Ben")
        .await
        .map_err(|e| e.to_string())?;
    a.send(Content::text("to Ann"))
        .await
        .map_err(|e| e.to_string())?;
    b.send(Content::text("to Ben"))
        .await
        .map_err(|e| e.to_string())?;
    c.received_text(&chat_a, "to Ann").await?;
    c.received_text(&chat_b, "to Ben").await?;
    let got = c.sim.received(&chat_a).await.map_err(|e| e.to_string())?;
    ensure(got.len() == 1, || format!("chat a got {got:?}"))?;
    ensure(
        c.session
            .engagements()
            .await
            .map_err(|e| e.to_string())?
            .len()
            == 2,
        || "two engagements".into(),
    )?;
    Ok(())
}

/// `leave` detaches without closing; a new session with the resume token finds the chat,
/// its transcript, and goes on.
async fn leave_and_resume(mut c: Ctx) -> R {
    let (eng, chat) = c.chat().await?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    c.expect("agent joins", |e| {
        matches!(e, Event::ParticipantJoined { .. })
    })
    .await?;
    eng.send(Content::text("before leaving"))
        .await
        .map_err(|e| e.to_string())?;
    c.received_text(&chat, "before leaving").await?;
    eng.leave().await.map_err(|e| e.to_string())?;
    ensure(eng.state() == EngagementState::Detached, || {
        format!("{:?}", eng.state())
    })?;
    ensure(
        c.session
            .engagements()
            .await
            .map_err(|e| e.to_string())?
            .is_empty(),
        || "a detached chat is not ongoing here".into(),
    )?;
    let err = eng.send(Content::text("x")).await.unwrap_err();
    ensure(err.kind() == ErrorKind::Closed, || format!("{err}"))?;
    // The chat goes on at TVox: the agent writes meanwhile.
    c.sim
        .agent_says(&chat, "are you still there?")
        .await
        .map_err(|e| e.to_string())?;
    let token = c.session.resume_token();
    ensure(token.is_some(), || "no resume token".into())?;
    let cfg = c.session.config().clone();
    let again = TvoxSession::connect_with(cfg, &TlsSettings::default(), token)
        .await
        .map_err(|e| e.to_string())?;
    let mut events = Events::record("new session", again.events(), STEP);
    let list = again.engagements().await.map_err(|e| e.to_string())?;
    let found = list
        .into_iter()
        .find(|e| e.id() == eng.id())
        .ok_or("the new session does not list the chat")?;
    let deadline = tokio::time::Instant::now() + STEP;
    while !found
        .transcript()
        .iter()
        .any(|m| m.content.as_text() == Some("are you still there?"))
    {
        ensure(tokio::time::Instant::now() < deadline, || {
            format!("transcript {:?}", found.transcript())
        })?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    found
        .send(Content::text("yes, back"))
        .await
        .map_err(|e| e.to_string())?;
    c.received_text(&chat, "yes, back").await?;
    // The new session reports the agent (its monitor replays the CONNECTED step) and the
    // acknowledgement; `EngagementStarted { resumed: true }` went out during `connect`,
    // before this stream existed: `engagements()` is how a new session finds its chats.
    events
        .expect("the agent, seen by the new session", |e| {
            matches!(e, Event::ParticipantJoined { .. })
        })
        .await
        .map_err(|f| f.to_string())?;
    events
        .expect(
            "MessageSent on the new session",
            |e| matches!(e, Event::MessageSent(m) if m.content.as_text() == Some("yes, back")),
        )
        .await
        .map_err(|f| f.to_string())?;
    Ok(())
}

/// The vendor's refusals: unknown service, service out of service.
async fn refusals(mut c: Ctx) -> R {
    let mut req = cc_testkit::default_chat_request();
    req.routing.target = Some("nope".into());
    let err = c.session.start_chat(req).await.unwrap_err();
    ensure(err.vendor_code() == Some("1004"), || format!("{err}"))?;
    c.sim
        .set_agents(MultiChannelType::Chat, "sales", 0)
        .map_err(|e| e.to_string())?;
    let mut req = cc_testkit::default_chat_request();
    req.routing.target = Some("sales".into());
    let err = c.session.start_chat(req).await.unwrap_err();
    ensure(
        err.vendor_code() == Some("1009") && err.is_retryable(),
        || format!("{err}"),
    )?;
    let mut req = cc_testkit::default_chat_request();
    req.routing.target = Some("unlicensed".into());
    let err = c.session.start_chat(req).await.unwrap_err();
    ensure(err.vendor_code() == Some("1003"), || format!("{err}"))?;
    // The recap needs a ticket-enabled MAIL channel, which this TVox lacks.
    let (eng, chat) = c.chat().await?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    let own = c.session.chat(&eng.id()).ok_or("unknown chat")?;
    let err = own.send_recap("casey@example.com").await.unwrap_err();
    ensure(err.vendor_code() == Some("1008"), || format!("{err}"))?;
    let err = own.send_recap("not an address").await.unwrap_err();
    ensure(err.kind() == ErrorKind::InvalidInput, || format!("{err}"))?;
    c.snapshot("extra_refusals");
    Ok(())
}

/// The server restarts and has lost the chat: the re-subscription fails with
/// `SESSION_NOT_FOUND` and the chat ends, by the system; the session goes on.
async fn restart_forgetting_chats(mut c: Ctx) -> R {
    let (eng, chat) = c.chat().await?;
    c.sim
        .agent_joins(&chat, "Alex Agent")
        .await
        .map_err(|e| e.to_string())?;
    c.expect("agent joins", |e| {
        matches!(e, Event::ParticipantJoined { .. })
    })
    .await?;
    c.sim.restart_forgetting_chats();
    let ev = c
        .expect("ended", |e| matches!(e, Event::EngagementEnded { .. }))
        .await?;
    ensure(
        matches!(&ev, Event::EngagementEnded { initiator: Initiator::System, reason: Some(r), .. }
            if r.contains("SESSION_NOT_FOUND")),
        || format!("{ev:?}"),
    )?;
    ensure(eng.state() == EngagementState::Ended, || {
        format!("{:?}", eng.state())
    })?;
    let (_again, _) = c.chat().await?;
    Ok(())
}

async fn next_state(live: &mut MediaSessionStream) -> Result<cc_core::CallState, String> {
    match tokio::time::timeout(STEP, live.next()).await {
        Ok(Some(MediaSessionEvent::Update(u))) => Ok(u.state),
        other => Err(format!("no session update: {other:?}")),
    }
}

/// Video sessions: new, monitor (CallState → neutral state through the call machine),
/// hold and resume, close; the WebRTC configuration travels in the handshake.
async fn media_sessions(c: Ctx) -> R {
    use cc_core::CallState as S;
    let mut live = c
        .session
        .media_session_monitor(MultiChannelType::Video)
        .await
        .map_err(|e| e.to_string())?;
    let id = c
        .session
        .media_session_new(MultiChannelType::Video, "support", None, None)
        .await
        .map_err(|e| e.to_string())?;
    ensure(next_state(&mut live).await? == S::Dialing, || {
        "NEW_OUTBOUND".into()
    })?;
    for (wire, want) in [
        (WireCallState::Connected, S::Connected),
        (WireCallState::Hold, S::OnHold),
        (WireCallState::Connected, S::Connected),
    ] {
        c.sim
            .set_call_state(&id, wire.clone())
            .map_err(|e| e.to_string())?;
        let got = next_state(&mut live).await?;
        ensure(got == want, || {
            format!("{wire} gave {got:?}, expected {want:?}")
        })?;
    }
    c.session
        .media_session_close(MultiChannelType::Video, &id)
        .await
        .map_err(|e| e.to_string())?;
    let got = next_state(&mut live).await?;
    ensure(matches!(got, S::Ended { .. }), || format!("{got:?}"))?;
    let sessions = c.sim.media_sessions();
    ensure(
        sessions.len() == 1 && sessions[0].3 == WireCallState::Idle,
        || format!("{sessions:?}"),
    )?;
    c.session
        .media_session_monitor_stop(MultiChannelType::Video)
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + STEP;
    while c.sim.cancelled().is_empty() {
        ensure(tokio::time::Instant::now() < deadline, || {
            "the monitor stop sent no subscription.cancel".into()
        })?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hello = c
        .sim
        .frames()
        .into_iter()
        .find(|f| f.body["method"] == "widget.hello")
        .ok_or("no hello")?;
    ensure(
        hello.body["params"]["webrtc"]
            == serde_json::json!({"enabled": true, "trickleIcePolicy": "FullTrickle", "iceGatherPolicy": "Relay"}),
        || format!("{}", hello.body),
    )?;
    c.snapshot("extra_media_sessions");
    Ok(())
}

/// Without `[tvox.webrtc] enabled`, the video and phone sessions and calls are refused
/// locally, and the capabilities claim no calls.
async fn media_sessions_need_webrtc(c: Ctx) -> R {
    let err = c
        .session
        .start_call(cc_core::CallRequest::default())
        .await
        .unwrap_err();
    ensure(err.kind() == ErrorKind::Unsupported, || format!("{err}"))?;
    ensure(!c.session.capabilities().calls_audio, || {
        "calls claimed without WebRTC".into()
    })?;
    let err = c
        .session
        .media_session_new(MultiChannelType::PhoneCall, "support", None, None)
        .await
        .unwrap_err();
    ensure(err.kind() == ErrorKind::Unsupported, || format!("{err}"))?;
    let err = c
        .session
        .media_session_monitor(MultiChannelType::Chat)
        .await
        .unwrap_err();
    ensure(err.kind() == ErrorKind::InvalidInput, || format!("{err}"))?;
    Ok(())
}

fn extra<F, Fut>(name: &str, opts: fn() -> SimOptions, body: F) -> Trial
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + 'static,
{
    extra_with(name, opts, |_| {}, body)
}

fn extra_with<F, Fut>(
    name: &str,
    opts: fn() -> SimOptions,
    tweak: fn(&mut TvoxConfig),
    body: F,
) -> Trial
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + 'static,
{
    let full = format!("tvox::extra_{name}");
    Trial::test(full.clone(), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failed::from(e.to_string()))?;
        let r = rt.block_on(async {
            let c = setup(opts(), tweak).await?;
            tokio::time::timeout(Duration::from_secs(30), body(c))
                .await
                .map_err(|_| "timed out".to_owned())?
        });
        r.map_err(|e| Failed::from(format!("{full}: {e}")))
    })
}

fn main() {
    let args = Arguments::from_args();
    let target = Target::new(Vendor::Tvox, CAPABILITIES, SNAPSHOTS, start)
        .snapshot_filter(no_pings)
        .redaction(SINCE, "[last event seen]");
    let mut trials = cc_testkit::trials(&target);
    trials.extend([
        extra("heartbeat_loss", sim_options, heartbeat_loss),
        extra("service_status_live", sim_options, service_status_live),
        extra("step_sequence", sim_options, step_sequence),
        extra("bot_handoff", sim_options, bot_handoff),
        extra("widget_extension", sim_options, widget_extension),
        extra(
            "inactivity_timeout",
            || SimOptions {
                inactivity_timeout: Duration::from_millis(300),
                inactivity_grace: Duration::from_millis(300),
                ..sim_options()
            },
            inactivity_timeout,
        ),
        extra(
            "max_duration",
            || SimOptions {
                inactivity_timeout: Duration::from_millis(200),
                inactivity_grace: Duration::from_secs(30),
                max_duration: Duration::from_millis(1200),
                ..sim_options()
            },
            max_duration,
        ),
        extra("two_chats", sim_options, two_chats),
        extra("leave_and_resume", sim_options, leave_and_resume),
        extra_with(
            "media_sessions",
            sim_options,
            |c| {
                c.webrtc = Some(WebrtcConfig {
                    enabled: true,
                    trickle_ice_policy: Some(TrickleIcePolicy::FullTrickle),
                    ice_gather_policy: Some(IceGatherPolicy::Relay),
                })
            },
            media_sessions,
        ),
        extra_with(
            "media_sessions_need_webrtc",
            sim_options,
            |c| c.webrtc = None,
            media_sessions_need_webrtc,
        ),
        extra(
            "refusals",
            || {
                let mut o = sim_options();
                let mut unlicensed = SimService::new(MultiChannelType::Chat, "unlicensed");
                unlicensed.configuration = ConfigurationStatus::NoLicense;
                o.services.push(unlicensed);
                o.channels
                    .insert("MAIL".into(), ConfigurationStatus::Disabled);
                o
            },
            refusals,
        ),
        extra(
            "restart_forgetting_chats",
            sim_options,
            restart_forgetting_chats,
        ),
    ]);
    libtest_mimic::run(&args, trials).exit();
}
