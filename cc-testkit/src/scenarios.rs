//! The conformance scenarios, written once against the trait set and [`SimControl`].
//!
//! Each scenario is a plain async fn over a [`Harness`], listed in [`SCENARIOS`] with the
//! [`Feature`]s it needs. Every one starts from a freshly connected session (guarded, as
//! `cc_sdk::connect` returns it) and a fresh simulator. Events are expected *in order*:
//! each expectation looks only at events after the one the previous expectation matched.
//! Every wait uses the target's step timeout and fails naming the step and listing the
//! events seen. The session's event stream is recorded from the start of the trial.
//!
//! Most scenarios begin with **start** and **join**:
//!
//! - *start*: `session.start_chat(request)`, then `sim.wait_for_chat`, then the event
//!   `EngagementStarted { engagement: eng.id(), resumed: false }`;
//! - *join*: `sim.agent_joins(chat, "Alex Agent")`, then `ParticipantJoined` with role `Agent`.
//!
//! "Customer says" means `eng.send(Content::Text)` and polling `sim.received(chat)` until
//! the text is there; "agent says" means `sim.agent_says(chat, text)` and the event
//! `MessageReceived` with that text, sender role `Agent`, and `id` equal to the id
//! `agent_says` returned.
//!
//! | scenario | needs | what it does and expects |
//! |---|---|---|
//! | `start_queue_join` | chat | start; `sim.queue(chat, 3, Some(90 s))` → `Queued` for the engagement (position `Some(3)` when `queue_position`, expected wait `Some(90 s)` when `expected_wait`), `eng.state() == Queued`; `sim.agent_joins` → `ParticipantJoined` agent named "Alex Agent", state `Active`, the agent in `participants()` |
//! | `messages_both_ways` | chat | start, join; customer sends three texts without waiting → the simulator receives exactly those three, in order; `MessageSent` for each client id, in order; the agent says three → `MessageReceived` in order; each of the six once in `transcript()`, each side in order |
//! | `typing_out` | typing_out | start, join; `eng.typing(true)` → `Received::Typing { on: true }`; `eng.typing(false)` is `Ok`; a message after it still arrives |
//! | `typing_in` | typing_in | start, join; `sim.agent_typing(chat, true)` → `Typing { on: true }` from an agent; then an agent message arrives |
//! | `delivery_receipts` | delivery_receipts | start, join; customer says → `MessageSent`, then `MessageDelivered` for it (by client id, or by the vendor id `MessageSent` carried): the simulator sends the vendor's delivery receipt on its own, as the server does; agent says → `eng.mark(id, Delivered)` → `Received::Receipt { message_id: id, state: "delivered" }` |
//! | `read_receipts` | read_receipts | as above with `sim.agent_reads(chat)` → `MessageRead`, and `eng.mark(id, Read)` → `Received::Receipt { state: "read" }` |
//! | `attachment_out` | attachments | start, join; `eng.upload(receipt.pdf, application/pdf, 2048 bytes)` → `Received::File { name: "receipt.pdf", size: 2048 }` and `MessageSent` with `Content::File` named receipt.pdf |
//! | `attachment_in` | attachments_in | start, join; `sim.agent_sends_file(chat, "invoice.png", "image/png", 1024 bytes)` → `MessageReceived` with `Content::File { name: "invoice.png", mime_type: "image/png" }` from the agent |
//! | `network_cut_without_loss` | chat | start, join, customer says "before the cut"; with a proxy: `proxy.set_down(true)` → `Connection(Reconnecting)`; three sends, each `Ok` (pending in the outbox); nothing of them on the server; `proxy.set_down(false)` → `Connection(Connected)`; without a proxy, `sim.drop_connections()` instead. Then the three arrive; the agent says "welcome back" (arrives), the customer says "barrier"; each of the four texts was received exactly once, in order, and is in the transcript exactly once |
//! | `server_drops_connection` | chat | start, join, customer says; `sim.drop_connections()` → `Reconnecting` → `Connected`; then as after a cut |
//! | `sends_during_server_drop` | chat | start, join, customer says; `sim.drop_connections()`, one send at once, `Reconnecting`, two sends, `Connected`; all four on the server once, in order, and once in the transcript |
//! | `server_restart` | chat | the same with `sim.restart()` (connections drop, the chat survives) |
//! | `resume_after_restart` | resume | start, join; customer says, agent says; `session.shutdown()` (must not end the chat); the target's reopen gives a new session; its `engagements()` includes the same id; its `transcript()` (possibly filled in the background) holds both texts once each, in order; the agent says → `MessageReceived` on the new session; the customer says through the resumed engagement |
//! | `agent_ends` | chat | start, join; `sim.agent_ends` → `EngagementEnded { initiator: Agent }`, state `Ended`; then `eng.send` fails with `ErrorKind::Closed` |
//! | `customer_ends` | chat | start, join; `eng.end(Some("resolved"))` → `EngagementEnded { initiator: Customer }`; the simulator's last received item is `Received::Ended`; state `Ended` |
//! | `token_refresh` | token_refresh | start, join; `sim.expire_token()` → `TokenExpiring` or `TokenExpired`; `session.set_token(sim.issue_token())`; then the agent says and the customer says |
//! | `idle_warning` | idle_warning | start, join; `sim.idle_warning(chat, 60 s)` → `IdleWarning` with grace in 50..=60 s (and this engagement, when it names one); `session.keep_alive()` when `keep_alive`; then the customer says and the agent says |
//! | `malformed_frame` | chat | start, join; `sim.send_malformed(chat)` → `Event::Error` of kind `Protocol` naming the vendor; then the agent says and the customer says |
//! | `call_full`, `call_video`, `call_busy`, `call_no_answer`, `call_refused` | chat, calls_audio (video: calls_video) | see [`crate::calls`] |
//! | `capabilities_match` | — | `session.capabilities()` equals the target's declared capabilities (the suite plans by them), and `session.vendor()` is the target's vendor. No snapshot |
//!
//! After every scenario: no `Event::Error` of kind `Protocol` (except the one
//! `malformed_frame` provokes), no `MessageFailed`, no `Lagged` on the session stream.
//!
//! **Negative trials** (`<label>::unsupported_<feature>`), one per missing feature that a
//! scenario needs and that has a client operation: `chat` (`start_chat`), `typing_out`
//! (`typing(true)`), `delivery_receipts` / `read_receipts` (`mark`, on an agent message),
//! `attachments` (`upload`), `token_refresh` (`set_token`), `calls_audio` / `calls_video`
//! (`start_call`, without / with video). Each runs the operation on the
//! adapter's own session (no guard) and through the guard; both must return
//! `Error::Unsupported { vendor, feature }`. Inbound-only features (`typing_in`,
//! `attachments_in`, `idle_warning`) and `resume` have no operation to refuse, so they get
//! no negative trial.
//!
//! [`SimControl`]: crate::SimControl

use std::sync::Arc;
use std::time::Duration;

use cc_core::{
    ClientMessageId, ConnectionState, Content, Engagement, EngagementState, ErrorKind, Event,
    Feature, Initiator, Message, MessageId, Receipt, Role, Secret, SentMessage, Upload,
};

use crate::calls::{call_busy, call_full, call_no_answer, call_refused, call_video};
use crate::harness::{Harness, LocalBoxFuture, Outcome, StepExt, check};
use crate::{Failure, Received, SimChat};

/// A scenario: a name (also the snapshot's), the features it needs, and its body.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// The name: `<vendor>::<name>` is the trial, `<name>@<vendor>.snap` the snapshot.
    pub name: &'static str,
    /// What the scenario needs; it is listed as ignored when the target lacks any.
    pub needs: &'static [Feature],
    /// Whether the recorded frames are snapshotted after it passes.
    pub snapshot: bool,
    /// How many `Event::Error` of kind `Protocol` the scenario provokes; more fail it.
    pub protocol_errors: usize,
    /// The body.
    pub run: for<'a> fn(&'a mut Harness) -> LocalBoxFuture<'a, Outcome>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

macro_rules! scenarios {
    ($(
        $name:ident needs [$($f:ident),*]
        $(snapshot $snap:literal)?
        $(protocol_errors $errs:literal)?;
    )*) => {
        /// Every scenario, in the order trials are listed.
        pub const SCENARIOS: &[Scenario] = &[ $(
            Scenario {
                name: stringify!($name),
                needs: &[ $(Feature::$f),* ],
                snapshot: scenarios!(@snap $($snap)?),
                protocol_errors: scenarios!(@errs $($errs)?),
                run: |h| Box::pin($name(h)),
            },
        )* ];
    };
    (@snap) => { true };
    (@snap $snap:literal) => { $snap };
    (@errs) => { 0 };
    (@errs $errs:literal) => { $errs };
}

scenarios! {
    start_queue_join needs [Chat];
    messages_both_ways needs [Chat];
    typing_out needs [Chat, TypingOut];
    typing_in needs [Chat, TypingIn];
    delivery_receipts needs [Chat, DeliveryReceipts];
    read_receipts needs [Chat, ReadReceipts];
    attachment_out needs [Chat, Attachments];
    attachment_in needs [Chat, AttachmentsIn];
    network_cut_without_loss needs [Chat];
    server_drops_connection needs [Chat];
    sends_during_server_drop needs [Chat] snapshot false;
    server_restart needs [Chat];
    resume_after_restart needs [Chat, Resume];
    agent_ends needs [Chat];
    customer_ends needs [Chat];
    token_refresh needs [Chat, TokenRefresh];
    idle_warning needs [Chat, IdleWarning];
    malformed_frame needs [Chat] protocol_errors 1;
    call_full needs [Chat, CallsAudio] snapshot false;
    call_video needs [Chat, CallsAudio, CallsVideo] snapshot false;
    call_busy needs [Chat, CallsAudio] snapshot false;
    call_no_answer needs [Chat, CallsAudio] snapshot false;
    call_refused needs [Chat, CallsAudio] snapshot false;
    capabilities_match needs [] snapshot false;
}

const AGENT: &str = "Alex Agent";

fn is_agent(p: &cc_core::Participant) -> bool {
    p.role == Role::Agent
}

fn text_of(m: &Message) -> Option<&str> {
    match &m.content {
        Content::Text(t) => Some(t),
        _ => None,
    }
}

fn received_texts(got: &[Received]) -> Vec<&str> {
    got.iter()
        .filter_map(|r| match r {
            Received::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Starts a chat, waits for the simulator to see it and for `EngagementStarted`.
async fn start(h: &mut Harness) -> Result<(Arc<dyn Engagement>, SimChat), Failure> {
    let eng = h
        .session()
        .start_chat(h.chat_request())
        .await
        .step("start chat")?;
    let id = eng.id();
    let chat = h
        .sim()
        .wait_for_chat(h.timeout())
        .await
        .step("simulator sees the chat")?;
    h.expect("EngagementStarted", |e| {
        matches!(e, Event::EngagementStarted { engagement, resumed: false } if *engagement == id)
    })
    .await?;
    Ok((eng, chat))
}

/// Starts a chat and has the agent join it.
pub(crate) async fn start_and_join(
    h: &mut Harness,
) -> Result<(Arc<dyn Engagement>, SimChat), Failure> {
    let (eng, chat) = start(h).await?;
    h.sim()
        .agent_joins(&chat, AGENT)
        .await
        .step("agent joins")?;
    h.expect(
        "ParticipantJoined (agent)",
        |e| matches!(e, Event::ParticipantJoined { participant, .. } if is_agent(participant)),
    )
    .await?;
    Ok((eng, chat))
}

/// The customer sends `text` and the simulator receives it.
pub(crate) async fn customer_says(
    h: &mut Harness,
    eng: &dyn Engagement,
    chat: &SimChat,
    text: &str,
) -> Result<SentMessage, Failure> {
    let step = format!("customer sends {text:?}");
    let sent = eng.send(Content::text(text)).await.step(&step)?;
    h.wait_received(&step, chat, |got| received_texts(got).contains(&text))
        .await?;
    Ok(sent)
}

/// The agent says `text` and the client receives it; returns the vendor's message id.
async fn agent_says(h: &mut Harness, chat: &SimChat, text: &str) -> Result<MessageId, Failure> {
    let step = format!("agent says {text:?}");
    let id = h.sim().agent_says(chat, text).await.step(&step)?;
    let ev = h
        .expect(
            &step,
            |e| matches!(e, Event::MessageReceived(m) if text_of(m) == Some(text)),
        )
        .await?;
    let Event::MessageReceived(m) = ev else {
        unreachable!("matched MessageReceived")
    };
    check(is_agent(&m.sender), &step, || {
        format!("the sender is {:?}, not an agent", m.sender)
    })?;
    check(
        m.id.as_ref().map(MessageId::as_str) == Some(id.as_str()),
        &step,
        || format!("the message id is {:?}, the simulator's is {id:?}", m.id),
    )?;
    Ok(MessageId::from(id))
}

/// Waits for `MessageSent` of `client_id`; returns the vendor id it carries.
async fn sent_ack(
    h: &mut Harness,
    step: &str,
    client_id: ClientMessageId,
) -> Result<Option<MessageId>, Failure> {
    let ev = h
        .expect(
            step,
            |e| matches!(e, Event::MessageSent(m) if m.client_id == Some(client_id)),
        )
        .await?;
    Ok(match ev {
        Event::MessageSent(m) => m.id.clone(),
        _ => None,
    })
}

/// Whether a receipt event is about the message with `client_id` / vendor `id`.
fn about(
    client_id: ClientMessageId,
    id: &Option<MessageId>,
    ev_client: &Option<ClientMessageId>,
    ev_id: &Option<MessageId>,
) -> bool {
    *ev_client == Some(client_id) || (id.is_some() && ev_id == id)
}

/// Counts transcript messages with this text.
fn count_in_transcript(eng: &dyn Engagement, text: &str) -> usize {
    eng.transcript()
        .iter()
        .filter(|m| text_of(m) == Some(text))
        .count()
}

fn transcript_texts(eng: &dyn Engagement) -> Vec<String> {
    eng.transcript()
        .iter()
        .map(|m| match &m.content {
            Content::Text(t) => format!("{:?}: {t}", m.sender.role),
            other => format!("{:?}: {other:?}", m.sender.role),
        })
        .collect()
}

/// Checks each text is in the transcript exactly once, and in this order.
fn check_transcript_once(eng: &dyn Engagement, step: &str, texts: &[&str]) -> Outcome {
    for t in texts {
        let n = count_in_transcript(eng, t);
        check(n == 1, step, || {
            format!(
                "{t:?} is {n} times in the transcript, not once: {:#?}",
                transcript_texts(eng)
            )
        })?;
    }
    let order: Vec<String> = eng
        .transcript()
        .iter()
        .filter_map(|m| text_of(m).filter(|t| texts.contains(t)).map(str::to_owned))
        .collect();
    check(order == texts, step, || {
        format!("the transcript order is {order:?}, expected {texts:?}")
    })
}

/// Start → queued (with position when supported) → agent joins → engagement active.
async fn start_queue_join(h: &mut Harness) -> Outcome {
    let (eng, chat) = start(h).await?;
    let caps = h.capabilities();
    let wait = Duration::from_secs(90);
    h.sim()
        .queue(&chat, 3, Some(wait))
        .await
        .step("simulator queues the chat at position 3")?;
    // Some vendors queue every new chat on their own; the Queued that counts is the one
    // carrying what the simulator sent, where the adapter can report it.
    let id = eng.id();
    h.expect(
        "Queued (position 3, expected wait 90 s, where supported)",
        |e| {
            matches!(e, Event::Queued { engagement, position, expected_wait }
            if *engagement == id
                && (!caps.queue_position || *position == Some(3))
                && (!caps.expected_wait || *expected_wait == Some(wait)))
        },
    )
    .await?;
    check(
        eng.state() == EngagementState::Queued,
        "state after Queued",
        || format!("state {:?}, expected Queued", eng.state()),
    )?;
    h.sim()
        .agent_joins(&chat, AGENT)
        .await
        .step("agent joins")?;
    let joined = h
        .expect(
            "ParticipantJoined (agent)",
            |e| matches!(e, Event::ParticipantJoined { participant, .. } if is_agent(participant)),
        )
        .await?;
    if let Event::ParticipantJoined { participant, .. } = joined {
        check(
            participant.display_name.as_deref() == Some(AGENT),
            "agent's name",
            || {
                format!(
                    "display name {:?}, expected {AGENT:?}",
                    participant.display_name
                )
            },
        )?;
    }
    check(
        eng.state() == EngagementState::Active,
        "state after join",
        || format!("state {:?}, expected Active", eng.state()),
    )?;
    check(
        eng.participants().iter().any(is_agent),
        "participants after join",
        || format!("no agent among {:?}", eng.participants()),
    )
}

/// Messages both ways, in order, acknowledged, once each in the transcript.
async fn messages_both_ways(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    let mine = ["Hello, I need help", "with my order", "number 1234"];
    let mut sent = Vec::new();
    for t in mine {
        sent.push(eng.send(Content::text(t)).await.step("customer sends")?);
    }
    let got = h
        .wait_received("simulator receives the customer's messages", &chat, |got| {
            received_texts(got).len() >= mine.len()
        })
        .await?;
    let texts = received_texts(&got);
    check(texts == mine, "order on the server", || {
        format!("the simulator received {texts:?}, expected {mine:?} (once each, in order)")
    })?;
    for s in &sent {
        sent_ack(h, "MessageSent for each customer message", s.client_id).await?;
    }
    let theirs = ["Hi Casey", "Let me check", "Found it"];
    for t in theirs {
        h.sim().agent_says(&chat, t).await.step("agent says")?;
    }
    for t in theirs {
        h.expect(
            &format!("MessageReceived {t:?} in order"),
            |e| matches!(e, Event::MessageReceived(m) if text_of(m) == Some(t)),
        )
        .await?;
    }
    check_transcript_once(&*eng, "customer messages in the transcript", &mine)?;
    check_transcript_once(&*eng, "agent messages in the transcript", &theirs)
}

/// The customer's typing reaches the agent.
async fn typing_out(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    eng.typing(true).await.step("customer starts typing")?;
    h.wait_received("simulator sees typing on", &chat, |got| {
        got.contains(&Received::Typing { on: true })
    })
    .await?;
    eng.typing(false).await.step("customer stops typing")?;
    // The message after typing still arrives: typing does not block the send path.
    customer_says(h, &*eng, &chat, "typed message").await?;
    Ok(())
}

/// The agent's typing reaches the client.
async fn typing_in(h: &mut Harness) -> Outcome {
    let (_eng, chat) = start_and_join(h).await?;
    h.sim()
        .agent_typing(&chat, true)
        .await
        .step("agent starts typing")?;
    h.expect(
        "Typing on (agent)",
        |e| matches!(e, Event::Typing { participant, on: true, .. } if is_agent(participant)),
    )
    .await?;
    agent_says(h, &chat, "done typing").await?;
    Ok(())
}

/// Delivery receipts both ways: the vendor's for our message, ours for the agent's.
async fn delivery_receipts(h: &mut Harness) -> Outcome {
    receipts_both_ways(h, Receipt::Delivered).await
}

/// Read receipts both ways.
async fn read_receipts(h: &mut Harness) -> Outcome {
    receipts_both_ways(h, Receipt::Read).await
}

/// Receipts of one kind both ways: the vendor's for the customer's message (after the agent
/// reads, for read receipts), then the customer's `mark` of an agent message.
async fn receipts_both_ways(h: &mut Harness, receipt: Receipt) -> Outcome {
    let (ours, theirs, state) = match receipt {
        Receipt::Delivered => ("please confirm delivery", "delivered to you?", "delivered"),
        Receipt::Read => ("please read this", "read this too", "read"),
    };
    let (eng, chat) = start_and_join(h).await?;
    let sent = customer_says(h, &*eng, &chat, ours).await?;
    let id = sent_ack(h, "MessageSent", sent.client_id).await?;
    if receipt == Receipt::Read {
        h.sim().agent_reads(&chat).await.step("agent reads")?;
    }
    let step = match receipt {
        Receipt::Delivered => "MessageDelivered for the customer's message",
        Receipt::Read => "MessageRead for the customer's message",
    };
    h.expect(step, |e| match (receipt, e) {
        (
            Receipt::Delivered,
            Event::MessageDelivered {
                client_id,
                id: ev_id,
                ..
            },
        )
        | (
            Receipt::Read,
            Event::MessageRead {
                client_id,
                id: ev_id,
                ..
            },
        ) => about(sent.client_id, &id, client_id, ev_id),
        _ => false,
    })
    .await?;
    let agent_msg = agent_says(h, &chat, theirs).await?;
    eng.mark(&agent_msg, receipt)
        .await
        .step(&format!("customer marks the agent's message {state}"))?;
    h.wait_received(
        &format!("simulator receives the {state} receipt"),
        &chat,
        |got| {
            got.contains(&Received::Receipt {
                message_id: agent_msg.to_string(),
                state: state.to_owned(),
            })
        },
    )
    .await?;
    Ok(())
}

/// The customer uploads a file; the agent gets it.
async fn attachment_out(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    let bytes: Arc<[u8]> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let sent = eng
        .upload(Upload {
            name: "receipt.pdf".to_owned(),
            mime_type: "application/pdf".to_owned(),
            bytes,
        })
        .await
        .step("customer uploads receipt.pdf")?;
    h.wait_received("simulator receives the file", &chat, |got| {
        got.contains(&Received::File {
            name: "receipt.pdf".to_owned(),
            size: 2048,
        })
    })
    .await?;
    let ev = h
        .expect(
            "MessageSent for the file",
            |e| matches!(e, Event::MessageSent(m) if m.client_id == Some(sent.client_id)),
        )
        .await?;
    if let Event::MessageSent(m) = ev {
        check(
            matches!(&m.content, Content::File(a) if a.name == "receipt.pdf"),
            "the sent message is the file",
            || format!("content {:?}", m.content),
        )?;
    }
    Ok(())
}

/// The agent sends a file; the client gets it.
async fn attachment_in(h: &mut Harness) -> Outcome {
    let (_eng, chat) = start_and_join(h).await?;
    let bytes: Vec<u8> = (0..1024u32).map(|i| (i % 7) as u8).collect();
    h.sim()
        .agent_sends_file(&chat, "invoice.png", "image/png", &bytes)
        .await
        .step("agent sends invoice.png")?;
    let ev = h
        .expect("MessageReceived with the file", |e| {
            matches!(e, Event::MessageReceived(m)
                if matches!(&m.content, Content::File(a) if a.name == "invoice.png"))
        })
        .await?;
    if let Event::MessageReceived(m) = ev
        && let Content::File(a) = &m.content
    {
        check(a.mime_type == "image/png", "file type", || {
            format!("mime type {:?}, expected image/png", a.mime_type)
        })?;
        check(is_agent(&m.sender), "file sender", || {
            format!("sender {:?}", m.sender)
        })?;
    }
    Ok(())
}

fn is_reconnecting(e: &Event) -> bool {
    matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
}

fn is_connected(e: &Event) -> bool {
    matches!(e, Event::Connection(ConnectionState::Connected))
}

/// After a reconnect: the agent's next message arrives, the customer's next one reaches
/// the simulator (a barrier behind anything resent), and every text in `sent` is on the
/// server exactly once, in order, and in the transcript exactly once.
async fn after_reconnect(
    h: &mut Harness,
    eng: &dyn Engagement,
    chat: &SimChat,
    sent: &[&str],
) -> Outcome {
    agent_says(h, chat, "welcome back").await?;
    customer_says(h, eng, chat, "barrier").await?;
    let got = h
        .sim()
        .received(chat)
        .await
        .step("received after reconnect")?;
    let texts = received_texts(&got);
    for t in sent {
        let n = texts.iter().filter(|x| *x == t).count();
        check(n == 1, "exactly once on the server", || {
            format!("{t:?} reached the simulator {n} times: {texts:?}")
        })?;
    }
    let order: Vec<&str> = texts.iter().copied().filter(|x| sent.contains(x)).collect();
    check(order == sent, "order on the server", || {
        format!("the simulator received {order:?}, expected {sent:?}")
    })?;
    check_transcript_once(eng, "shown once in the transcript", sent)
}

/// The network goes down mid-conversation; messages sent meanwhile arrive once, in order.
///
/// With a proxy: the proxy goes down (every connection reset, new ones refused), the
/// client reports `Reconnecting`, the customer sends three messages, the proxy comes back
/// and the client reports `Connected`. Without one, the simulator drops the connections.
async fn network_cut_without_loss(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    customer_says(h, &*eng, &chat, "before the cut").await?;
    let during = [
        "sent during the cut 1",
        "sent during the cut 2",
        "sent during the cut 3",
    ];
    if let Some(proxy) = h.proxy().cloned() {
        proxy.set_down(true);
        h.expect("Reconnecting after the network went down", is_reconnecting)
            .await?;
        for t in during {
            eng.send(Content::text(t))
                .await
                .step("send while disconnected (the outbox keeps it)")?;
        }
        // Nothing can have reached the server while it was unreachable.
        let got = h
            .sim()
            .received(&chat)
            .await
            .step("received during the cut")?;
        let early: Vec<&str> = received_texts(&got)
            .into_iter()
            .filter(|t| during.contains(t))
            .collect();
        check(early.is_empty(), "nothing delivered during the cut", || {
            format!("the simulator got {early:?} while the network was down")
        })?;
        proxy.set_down(false);
    } else {
        h.sim()
            .drop_connections()
            .await
            .step("simulator drops the connections")?;
        h.expect("Reconnecting after the drop", is_reconnecting)
            .await?;
        for t in during {
            eng.send(Content::text(t))
                .await
                .step("send while reconnecting")?;
        }
    }
    h.expect("Connected again", is_connected).await?;
    let mut all = vec!["before the cut"];
    all.extend(during);
    h.wait_received("the held messages arrive", &chat, |got| {
        let t = received_texts(got);
        during.iter().all(|d| t.contains(d))
    })
    .await?;
    after_reconnect(h, &*eng, &chat, &all).await
}

/// The server drops every connection; the client reconnects and goes on.
async fn server_drops_connection(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    customer_says(h, &*eng, &chat, "before the drop").await?;
    h.sim()
        .drop_connections()
        .await
        .step("simulator drops the connections")?;
    h.expect("Reconnecting after the drop", is_reconnecting)
        .await?;
    h.expect("Connected again", is_connected).await?;
    after_reconnect(h, &*eng, &chat, &["before the drop"]).await
}

/// The server drops every connection while the customer keeps writing: one message goes
/// out at the moment of the drop (it may hit the dying socket), two more while the client
/// reconnects. Each reaches the server exactly once, in order, and shows once.
///
/// Not snapshotted: which frames the dying socket carried depends on timing.
async fn sends_during_server_drop(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    customer_says(h, &*eng, &chat, "before the drop").await?;
    let during = [
        "sent as the server dropped 1",
        "sent while reconnecting 2",
        "sent while reconnecting 3",
    ];
    h.sim()
        .drop_connections()
        .await
        .step("simulator drops the connections")?;
    eng.send(Content::text(during[0]))
        .await
        .step("send at the moment of the drop")?;
    h.expect("Reconnecting after the drop", is_reconnecting)
        .await?;
    for t in &during[1..] {
        eng.send(Content::text(*t))
            .await
            .step("send while reconnecting")?;
    }
    h.expect("Connected again", is_connected).await?;
    h.wait_received("the held messages arrive", &chat, |got| {
        let t = received_texts(got);
        during.iter().all(|d| t.contains(d))
    })
    .await?;
    let mut all = vec!["before the drop"];
    all.extend(during);
    after_reconnect(h, &*eng, &chat, &all).await
}

/// The server restarts (connections drop, chats survive); the client goes on.
async fn server_restart(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    customer_says(h, &*eng, &chat, "before the restart").await?;
    h.sim().restart().await.step("simulator restarts")?;
    h.expect("Reconnecting after the restart", is_reconnecting)
        .await?;
    h.expect("Connected again", is_connected).await?;
    after_reconnect(h, &*eng, &chat, &["before the restart"]).await
}

/// The app restarts: a new session for the same customer finds the chat, with its
/// transcript, and the conversation goes on.
async fn resume_after_restart(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    customer_says(h, &*eng, &chat, "before the app restart").await?;
    agent_says(h, &chat, "agent before the app restart").await?;
    let id = eng.id();
    drop(eng);
    h.session()
        .shutdown()
        .await
        .step("old session shuts down (the app quits)")?;
    let new = h.reopen("open a new session for the same customer").await?;
    let mut events = crate::Events::record("reopened session", new.events(), h.timeout());
    let list = new
        .engagements()
        .await
        .step("the new session lists its engagements")?;
    let ids: Vec<String> = list.iter().map(|e| e.id().to_string()).collect();
    let Some(eng) = list.into_iter().find(|e| e.id() == id) else {
        return Err(Failure::new(format!(
            "step `resume`: the new session's engagements {ids:?} do not include {id}"
        )));
    };
    let before = ["before the app restart", "agent before the app restart"];
    h.wait_until(
        "transcript restored",
        || before.iter().all(|t| count_in_transcript(&*eng, t) >= 1),
        || format!("the transcript is {:#?}", transcript_texts(&*eng)),
    )
    .await?;
    check_transcript_once(&*eng, "transcript intact after resume", &before)?;
    let step = "agent says \"after the app restart\"";
    h.sim()
        .agent_says(&chat, "after the app restart")
        .await
        .step(step)?;
    events
        .expect(step, |e| {
            matches!(e, Event::MessageReceived(m) if text_of(m) == Some("after the app restart"))
        })
        .await?;
    customer_says(h, &*eng, &chat, "customer after the app restart").await?;
    Ok(())
}

/// The agent ends the chat; the client sees it, and sending afterwards fails `Closed`.
async fn agent_ends(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    h.sim().agent_ends(&chat).await.step("agent ends")?;
    h.expect("EngagementEnded by the agent", |e| {
        matches!(
            e,
            Event::EngagementEnded {
                initiator: Initiator::Agent,
                ..
            }
        )
    })
    .await?;
    check(eng.state() == EngagementState::Ended, "state", || {
        format!("state {:?}, expected Ended", eng.state())
    })?;
    match eng.send(Content::text("anyone there?")).await {
        Err(e) if e.kind() == ErrorKind::Closed => Ok(()),
        other => Err(Failure::new(format!(
            "step `send after the end`: expected Error::Closed, got {other:?}"
        ))),
    }
}

/// The customer ends the chat; the simulator sees it and the client reports it.
async fn customer_ends(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    eng.end(Some("resolved".to_owned()))
        .await
        .step("customer ends")?;
    h.expect("EngagementEnded by the customer", |e| {
        matches!(
            e,
            Event::EngagementEnded {
                initiator: Initiator::Customer,
                ..
            }
        )
    })
    .await?;
    h.wait_received("simulator sees the end", &chat, |got| {
        got.last() == Some(&Received::Ended)
    })
    .await?;
    check(eng.state() == EngagementState::Ended, "state", || {
        format!("state {:?}, expected Ended", eng.state())
    })
}

/// The token expires; the client says so, takes a fresh one, and the chat goes on.
async fn token_refresh(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    h.sim()
        .expire_token()
        .await
        .step("simulator expires the token")?;
    h.expect("TokenExpiring or TokenExpired", |e| {
        matches!(e, Event::TokenExpiring { .. } | Event::TokenExpired)
    })
    .await?;
    let token: Secret = h
        .sim()
        .issue_token()
        .await
        .step("simulator issues a token")?;
    h.session()
        .set_token(token)
        .await
        .step("session takes the new token")?;
    agent_says(h, &chat, "still with you").await?;
    customer_says(h, &*eng, &chat, "after the refresh").await?;
    Ok(())
}

/// The vendor warns of an idle chat; the client reports it, and the chat goes on.
async fn idle_warning(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    let grace = Duration::from_secs(60);
    h.sim()
        .idle_warning(&chat, grace)
        .await
        .step("simulator warns of idleness")?;
    let ev = h
        .expect("IdleWarning", |e| matches!(e, Event::IdleWarning { .. }))
        .await?;
    if let Event::IdleWarning {
        engagement,
        grace: got,
    } = ev
    {
        // Vendors that send a deadline lose a little to the trip; none adds time.
        check(
            got <= grace && got >= grace - Duration::from_secs(10),
            "IdleWarning grace",
            || format!("grace {got:?}, expected about {grace:?}"),
        )?;
        if let Some(e) = engagement {
            check(e == eng.id(), "IdleWarning engagement", || {
                format!("engagement {e}, expected {}", eng.id())
            })?;
        }
    }
    if h.capabilities().keep_alive {
        h.session().keep_alive().await.step("keep alive")?;
    }
    customer_says(h, &*eng, &chat, "still here").await?;
    agent_says(h, &chat, "great").await?;
    Ok(())
}

/// A malformed frame becomes `Event::Error(Protocol)` and the session goes on.
async fn malformed_frame(h: &mut Harness) -> Outcome {
    let (eng, chat) = start_and_join(h).await?;
    h.sim()
        .send_malformed(&chat)
        .await
        .step("simulator sends a malformed frame")?;
    let vendor = h.vendor();
    h.expect("Error(Protocol) for the malformed frame", |e| {
        matches!(e, Event::Error(err)
            if err.kind() == ErrorKind::Protocol && err.vendor() == Some(vendor))
    })
    .await?;
    agent_says(h, &chat, "after the bad frame").await?;
    customer_says(h, &*eng, &chat, "customer after the bad frame").await?;
    Ok(())
}

/// The session reports the capabilities the target declared (the suite planned by them).
async fn capabilities_match(h: &mut Harness) -> Outcome {
    let declared = h.capabilities();
    let actual = h.session().capabilities();
    check(actual == declared, "capabilities", || {
        let diff: Vec<String> = cc_core::Feature::ALL
            .iter()
            .filter(|f| actual.supports(**f) != declared.supports(**f))
            .map(|f| {
                format!(
                    "{f}: declared {}, session {}",
                    declared.supports(*f),
                    actual.supports(*f)
                )
            })
            .collect();
        format!(
            "the session's capabilities differ from the target's: {diff:?}; limits declared {:?}, session {:?}",
            declared.limits(),
            actual.limits()
        )
    })?;
    check(h.session().vendor() == h.vendor(), "vendor", || {
        format!(
            "the session says {}, the target {}",
            h.session().vendor(),
            h.vendor()
        )
    })
}

/// A probe: the operation that must return `Error::Unsupported { feature }` when the
/// adapter lacks `feature`. Features with no client operation (inbound-only ones such as
/// `typing_in`, `attachments_in`, `idle_warning`, `queue_position`, and `resume`) have none.
pub(crate) fn probe_exists(feature: Feature) -> bool {
    matches!(
        feature,
        Feature::Chat
            | Feature::TypingOut
            | Feature::DeliveryReceipts
            | Feature::ReadReceipts
            | Feature::Attachments
            | Feature::TokenRefresh
            | Feature::CallsAudio
            | Feature::CallsVideo
    )
}

/// Runs the probe for `feature` against the adapter's own session (no guard), then
/// through the guard; both must refuse with `Unsupported { vendor, feature }`.
pub(crate) async fn probe(h: &mut Harness, feature: Feature) -> Outcome {
    let vendor = h.vendor();
    let expect = |who: &str, r: cc_core::Result<()>| -> Outcome {
        match r {
            Err(cc_core::Error::Unsupported {
                vendor: v,
                feature: f,
            }) if v == vendor && f == feature => Ok(()),
            other => Err(Failure::new(format!(
                "step `{who} refuses {feature}`: expected Error::Unsupported {{ vendor: \
                 {vendor}, feature: {feature} }}, got {other:?}"
            ))),
        }
    };
    match feature {
        Feature::Chat => {
            expect(
                "adapter",
                h.raw_session()
                    .start_chat(h.chat_request())
                    .await
                    .map(|_| ()),
            )?;
            expect(
                "guard",
                h.session().start_chat(h.chat_request()).await.map(|_| ()),
            )
        }
        Feature::CallsAudio | Feature::CallsVideo => {
            for (who, r) in crate::calls::probe_call(h, feature).await {
                expect(who, r)?;
            }
            Ok(())
        }
        Feature::TokenRefresh => {
            let token = || Secret::new("conformance-token");
            expect("adapter", h.raw_session().set_token(token()).await)?;
            expect("guard", h.session().set_token(token()).await)
        }
        _ => {
            // One chat, started on the adapter's session; the guarded view of the same
            // chat comes from the guarded session's `engagements()`.
            let raw = h
                .raw_session()
                .start_chat(h.chat_request())
                .await
                .step("start a chat for the probe")?;
            let chat = h
                .sim()
                .wait_for_chat(h.timeout())
                .await
                .step("simulator sees the probe's chat")?;
            let guarded = h
                .session()
                .engagements()
                .await
                .step("guarded session lists the chat")?
                .into_iter()
                .find(|e| e.id() == raw.id())
                .ok_or_else(|| {
                    Failure::new(format!(
                        "step `guarded session lists the chat`: {} is not among the \
                         session's engagements",
                        raw.id()
                    ))
                })?;
            let target = if matches!(feature, Feature::DeliveryReceipts | Feature::ReadReceipts) {
                h.sim()
                    .agent_joins(&chat, AGENT)
                    .await
                    .step("agent joins the probe's chat")?;
                let id = h
                    .sim()
                    .agent_says(&chat, "probe")
                    .await
                    .step("agent says something to mark")?;
                Some(MessageId::from(id))
            } else {
                None
            };
            for (who, eng) in [("adapter", &raw), ("guard", &guarded)] {
                let r = probe_engagement(&**eng, feature, target.as_ref()).await;
                expect(who, r)?;
            }
            Ok(())
        }
    }
}

/// The engagement operation that needs `feature`.
async fn probe_engagement(
    eng: &dyn Engagement,
    feature: Feature,
    message: Option<&MessageId>,
) -> cc_core::Result<()> {
    let message = message.cloned().unwrap_or_else(|| MessageId::from("probe"));
    match feature {
        Feature::TypingOut => eng.typing(true).await,
        Feature::DeliveryReceipts => eng.mark(&message, Receipt::Delivered).await,
        Feature::ReadReceipts => eng.mark(&message, Receipt::Read).await,
        Feature::Attachments => eng
            .upload(Upload {
                name: "probe.txt".to_owned(),
                mime_type: "text/plain".to_owned(),
                bytes: Arc::from(&b"probe"[..]),
            })
            .await
            .map(|_| ()),
        other => unreachable!("no probe for {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_snake_case() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
    }

    #[test]
    fn every_probe_is_reachable_from_some_scenario() {
        for f in Feature::ALL {
            if probe_exists(*f) {
                assert!(
                    SCENARIOS.iter().any(|s| s.needs.contains(f)),
                    "{f} has a probe but no scenario needs it"
                );
            }
        }
    }
}
