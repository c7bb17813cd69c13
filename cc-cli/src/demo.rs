//! `cc-cli demo`: one scripted conversation through every adapter, against its embedded
//! simulator, with the same app code for every vendor.
//!
//! Each vendor and transport is a *lane*: start the simulator, connect through `cc_sdk`,
//! start a chat, wait in the queue, let an agent join, exchange messages both ways, typing,
//! a receipt, an attachment, an audio call where the adapter has calls (a tone each way,
//! packets counted on both ends, DTMF), a forced reconnect with messages sent during the cut (each must
//! reach the server exactly once), and end. Every event the session emits is printed as a
//! timeline; a step the adapter's capabilities exclude is shown as skipped. The run ends with
//! a table (vendor, transport, steps passed, median message round trip) and a non-zero exit
//! code if any step failed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_sdk::rtc::{RecordingSink, ToneSource};
use cc_sdk::testkit::calls::{StatsWait, wait_call_stats};
use cc_sdk::testkit::{
    CallAnswer, FarEndWait, Received, RunningSim, SimChat, SimControl, SimEntry, SimStart,
};
use cc_sdk::{
    CallRequest, CallState, Capabilities, ChatRequest, ConnectionState, Content, Customer,
    Engagement, Event, EventStream, Feature, MediaDevices, Receipt, Role, Session, Upload, Vendor,
};
use futures::{FutureExt, StreamExt};

/// Flags of `cc-cli demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only this vendor (expertflow, tvox, avaya, genesys, tetherfi).
    #[arg(long)]
    vendor: Option<Vendor>,
    /// Only the default transport of each vendor.
    #[arg(long)]
    default_transport: bool,
    /// How many messages the customer sends to measure the round trip.
    #[arg(long, default_value_t = 5)]
    messages: usize,
    /// Plain output without colors (also when NO_COLOR is set or stdout is not a terminal).
    #[arg(long)]
    no_color: bool,
}

/// Runs the demo and writes the timeline and the table to `out`.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let color =
        !args.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let paint = Paint { color };
    let lanes = lanes(args);
    if lanes.is_empty() {
        return Err(
            "no adapter with a simulator is compiled in (build cc-cli with cc-sdk's `sim` feature)"
                .into(),
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for (entry, transport) in lanes {
        let mut lane = Lane::new(entry.vendor, transport, paint, args.messages);
        runtime.block_on(lane.run(entry))?;
        out.write_all(lane.log.as_bytes())?;
        out.flush()?;
        results.push(lane);
    }
    out.write_all(table(&results, paint).as_bytes())?;
    let failed: usize = results.iter().map(|l| l.failed()).sum();
    if failed > 0 {
        return Err(format!("{failed} demo step(s) failed").into());
    }
    Ok(())
}

fn lanes(args: &Args) -> Vec<(SimEntry, &'static str)> {
    let mut lanes = Vec::new();
    for entry in cc_sdk::sims() {
        if args.vendor.is_some_and(|v| v != entry.vendor) {
            continue;
        }
        let transports = if args.default_transport {
            &entry.transports[..1]
        } else {
            entry.transports
        };
        for t in transports {
            lanes.push((entry, *t));
        }
    }
    lanes
}

#[derive(Clone, Copy)]
struct Paint {
    color: bool,
}

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn ok(self, t: &str) -> String {
        self.wrap("32", t)
    }
    fn bad(self, t: &str) -> String {
        self.wrap("31;1", t)
    }
    fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn head(self, t: &str) -> String {
        self.wrap("1;36", t)
    }
    fn event(self, t: &str) -> String {
        self.wrap("33", t)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Skipped(String),
    Failed(String),
}

struct Lane {
    vendor: Vendor,
    transport: &'static str,
    paint: Paint,
    messages: usize,
    start: Instant,
    log: String,
    steps: Vec<(&'static str, Outcome)>,
    round_trips: Vec<Duration>,
    caps_rate: Option<u32>,
}

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed step: its name and what went wrong.
type StepError = (&'static str, String);

/// A session's event stream with the events read but not yet matched, so a step can find
/// an event that arrived before it asked, in whatever order the events of one step arrive.
struct Watch {
    stream: EventStream,
    unread: VecDeque<Event>,
}

impl Lane {
    fn new(vendor: Vendor, transport: &'static str, paint: Paint, messages: usize) -> Self {
        Lane {
            vendor,
            transport,
            paint,
            messages: messages.max(1),
            start: Instant::now(),
            log: String::new(),
            steps: Vec::new(),
            round_trips: Vec::new(),
            caps_rate: None,
        }
    }

    fn failed(&self) -> usize {
        self.steps
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count()
    }

    fn stamp(&self) -> String {
        self.paint
            .dim(&format!("{:>8.3}s", self.start.elapsed().as_secs_f64()))
    }

    fn line(&mut self, text: &str) {
        let stamp = self.stamp();
        let _ = writeln!(self.log, "  {stamp}  {text}");
    }

    fn record(&mut self, step: &'static str, outcome: Outcome) {
        let text = match &outcome {
            Outcome::Passed => self.paint.ok(&format!("✓ {step}")),
            Outcome::Skipped(why) => self.paint.dim(&format!("- {step} (skipped: {why})")),
            Outcome::Failed(why) => self.paint.bad(&format!("✗ {step}: {why}")),
        };
        self.line(&text);
        self.steps.push((step, outcome));
    }

    /// Waits for an event matching `pred`, printing every event read on the way.
    /// Waits for an event `pred` accepts (or takes it from those kept unread); a failure
    /// names `step`.
    async fn expect(
        &mut self,
        step: &'static str,
        watch: &mut Watch,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> Result<Event, StepError> {
        if let Some(i) = watch.unread.iter().position(&pred) {
            return Ok(watch.unread.remove(i).expect("index in range"));
        }
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, watch.stream.next()).await {
                Err(_) => return Err((step, format!("no {what} within {STEP_TIMEOUT:?}"))),
                Ok(None) => {
                    return Err((step, format!("the event stream ended before {what}")));
                }
                Ok(Some(ev)) => {
                    let text = self.paint.event(&cc_sdk::testkit::describe(&ev));
                    self.line(&format!("event {text}"));
                    if pred(&ev) {
                        return Ok(ev);
                    }
                    // Kept: a later step may be waiting for it.
                    watch.unread.push_back(ev);
                }
            }
        }
    }

    /// Prints and keeps the events already waiting, without blocking.
    fn drain(&mut self, watch: &mut Watch) {
        while let Some(Some(ev)) = watch.stream.next().now_or_never() {
            let text = self.paint.event(&cc_sdk::testkit::describe(&ev));
            self.line(&format!("event {text}"));
            watch.unread.push_back(ev);
        }
    }

    async fn run(&mut self, entry: SimEntry) -> Result<(), Box<dyn std::error::Error>> {
        let head = format!(
            "{} ({}) over {}",
            self.vendor.display_name(),
            self.vendor,
            self.transport
        );
        let _ = writeln!(self.log, "\n{}", self.paint.head(&head));
        let sim = match (entry.start)(SimStart {
            transport: Some(self.transport.to_owned()),
            port: 0,
        })
        .await
        {
            Ok(sim) => sim,
            Err(e) => {
                self.record("start the simulator", Outcome::Failed(e.to_string()));
                return Ok(());
            }
        };
        self.line(&self.paint.dim(&format!("simulator on {}", sim.addr)));
        let session = match cc_sdk::connect(&sim.config).await {
            Ok(s) => s,
            Err(e) => {
                self.record("connect", Outcome::Failed(e.to_string()));
                return Ok(());
            }
        };
        self.record("connect", Outcome::Passed);
        let mut watch = Watch {
            stream: session.events(),
            unread: VecDeque::new(),
        };
        if let Err((step, why)) = self.script(&sim, session.as_ref(), &mut watch).await {
            self.record(step, Outcome::Failed(why));
        }
        let _ = session.shutdown().await;
        self.drain(&mut watch);
        Ok(())
    }

    async fn script(
        &mut self,
        sim: &RunningSim,
        session: &dyn Session,
        watch: &mut Watch,
    ) -> Result<(), StepError> {
        let caps = session.capabilities();
        self.caps_rate = caps.messages_per_second;
        let control = Arc::clone(&sim.control);

        // Start the chat and find it on the server.
        let step = "start a chat";
        let request = ChatRequest {
            customer: Customer {
                nickname: Some("Dana Demo".into()),
                first_name: Some("Dana".into()),
                last_name: Some("Demo".into()),
                email: Some("dana@example.com".into()),
                ..Customer::default()
            },
            subject: Some("Order 1234 arrived damaged".into()),
            ..ChatRequest::default()
        };
        let chat_handle = session
            .start_chat(request)
            .await
            .map_err(|e| (step, e.to_string()))?;
        let chat = control
            .wait_for_chat(STEP_TIMEOUT)
            .await
            .map_err(|e| (step, e.to_string()))?;
        self.expect(step, watch, "EngagementStarted", |e| {
            matches!(e, Event::EngagementStarted { .. })
        })
        .await?;
        self.record(step, Outcome::Passed);

        let step = "queued";
        control
            .queue(&chat, 2, Some(Duration::from_secs(45)))
            .await
            .map_err(|e| (step, e.to_string()))?;
        self.expect(step, watch, "Queued", |e| matches!(e, Event::Queued { .. }))
            .await?;
        self.record(step, Outcome::Passed);

        let step = "agent joins";
        control
            .agent_joins(&chat, "Alex Agent")
            .await
            .map_err(|e| (step, e.to_string()))?;
        self.expect(step, watch, "an agent joining", |e| {
            matches!(e, Event::ParticipantJoined { participant, .. } if participant.role == Role::Agent)
        })
        .await?;
        self.record(step, Outcome::Passed);

        self.messages_both_ways(&control, &chat, chat_handle.as_ref(), watch)
            .await?;
        self.typing(&caps, &control, &chat, chat_handle.as_ref(), watch)
            .await?;
        self.receipt(&caps, &control, &chat, chat_handle.as_ref(), watch)
            .await?;
        self.attachment(&caps, &control, &chat, chat_handle.as_ref())
            .await?;
        self.call(&caps, &control, session, watch).await?;
        self.reconnect(&control, &chat, chat_handle.as_ref(), watch)
            .await?;

        let step = "customer ends the chat";
        chat_handle
            .end(None)
            .await
            .map_err(|e| (step, e.to_string()))?;
        self.expect(step, watch, "EngagementEnded", |e| {
            matches!(e, Event::EngagementEnded { .. })
        })
        .await?;
        self.record(step, Outcome::Passed);
        Ok(())
    }

    async fn send_and_confirm(
        &mut self,
        step: &'static str,
        chat: &dyn Engagement,
        watch: &mut Watch,
        text: &str,
    ) -> Result<Duration, StepError> {
        let t0 = Instant::now();
        let sent = chat
            .send(Content::text(text))
            .await
            .map_err(|e| (step, e.to_string()))?;
        let id = sent.client_id;
        self.expect(
            step,
            watch,
            "MessageSent",
            move |e| matches!(e, Event::MessageSent(m) if m.client_id == Some(id)),
        )
        .await?;
        Ok(t0.elapsed())
    }

    async fn messages_both_ways(
        &mut self,
        control: &Arc<dyn SimControl>,
        chat: &SimChat,
        handle: &dyn Engagement,
        watch: &mut Watch,
    ) -> Result<(), StepError> {
        let step = "messages both ways";
        let mut texts = Vec::new();
        // Send no faster than the vendor accepts, so the round trip measures the SDK and the
        // wire rather than the adapter's rate-limit queue.
        let gap = handle_rate_gap(self.caps_rate);
        for i in 1..=self.messages {
            if i > 1 {
                tokio::time::sleep(gap).await;
            }
            let text = format!("Hello, this is message {i} from the customer");
            let rtt = self.send_and_confirm(step, handle, watch, &text).await?;
            self.round_trips.push(rtt);
            texts.push(text);
        }
        for text in [
            "Hi Dana, I am sorry to hear that.",
            "Could you send a photo of the parcel?",
        ] {
            let id = control
                .agent_says(chat, text)
                .await
                .map_err(|e| (step, e.to_string()))?;
            self.expect(step, watch, "the agent's message", |e| {
                matches!(e, Event::MessageReceived(m) if m.id.as_ref().is_some_and(|m| m.as_str() == id))
            })
            .await?;
        }
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        once_each_in_order(control.as_ref(), chat, &texts)
            .await
            .map_err(|e| (step, e))?;
        self.record(step, Outcome::Passed);
        Ok(())
    }

    async fn typing(
        &mut self,
        caps: &Capabilities,
        control: &Arc<dyn SimControl>,
        chat: &SimChat,
        handle: &dyn Engagement,
        watch: &mut Watch,
    ) -> Result<(), StepError> {
        let step = "customer typing";
        if caps.typing_out {
            handle
                .typing(true)
                .await
                .map_err(|e| (step, e.to_string()))?;
            wait_received(step, control.as_ref(), chat, |r| {
                matches!(r, Received::Typing { on: true })
            })
            .await?;
            self.record(step, Outcome::Passed);
        } else {
            self.record(step, Outcome::Skipped(format!("no {}", Feature::TypingOut)));
        }
        let step = "agent typing";
        if caps.typing_in {
            control
                .agent_typing(chat, true)
                .await
                .map_err(|e| (step, e.to_string()))?;
            self.expect(step, watch, "the agent typing", |e| {
                matches!(e, Event::Typing { on: true, .. })
            })
            .await?;
            self.record(step, Outcome::Passed);
        } else {
            self.record(step, Outcome::Skipped(format!("no {}", Feature::TypingIn)));
        }
        Ok(())
    }

    async fn receipt(
        &mut self,
        caps: &Capabilities,
        control: &Arc<dyn SimControl>,
        chat: &SimChat,
        handle: &dyn Engagement,
        watch: &mut Watch,
    ) -> Result<(), StepError> {
        let step = "read receipt";
        if caps.read_receipts {
            let last = handle
                .transcript()
                .into_iter()
                .rev()
                .find(|m| m.sender.role == Role::Agent && m.id.is_some())
                .and_then(|m| m.id)
                .ok_or((
                    step,
                    "no agent message with an id in the transcript".to_owned(),
                ))?;
            handle
                .mark(&last, Receipt::Read)
                .await
                .map_err(|e| (step, e.to_string()))?;
            wait_received(step, control.as_ref(), chat, |r| {
                matches!(r, Received::Receipt { .. })
            })
            .await?;
            control
                .agent_reads(chat)
                .await
                .map_err(|e| (step, e.to_string()))?;
            self.expect(step, watch, "MessageRead", |e| {
                matches!(e, Event::MessageRead { .. })
            })
            .await?;
            self.record(step, Outcome::Passed);
        } else if caps.delivery_receipts {
            let step = "delivery receipt";
            self.expect(step, watch, "MessageDelivered", |e| {
                matches!(e, Event::MessageDelivered { .. })
            })
            .await?;
            self.record(step, Outcome::Passed);
        } else {
            self.record(step, Outcome::Skipped("no receipts".into()));
        }
        Ok(())
    }

    async fn attachment(
        &mut self,
        caps: &Capabilities,
        control: &Arc<dyn SimControl>,
        chat: &SimChat,
        handle: &dyn Engagement,
    ) -> Result<(), StepError> {
        let step = "attachment";
        if !caps.attachments {
            self.record(
                step,
                Outcome::Skipped(format!("no {}", Feature::Attachments)),
            );
            return Ok(());
        }
        let bytes: Arc<[u8]> = Arc::from(&b"parcel photo placeholder bytes"[..]);
        let size = bytes.len() as u64;
        handle
            .upload(Upload {
                name: "parcel.txt".into(),
                mime_type: "text/plain".into(),
                bytes,
            })
            .await
            .map_err(|e| (step, e.to_string()))?;
        wait_received(
            step,
            control.as_ref(),
            chat,
            |r| matches!(r, Received::File { name, size: s } if name == "parcel.txt" && *s == size),
        )
        .await?;
        self.record(step, Outcome::Passed);
        Ok(())
    }

    /// An audio call: a tone each way, packets counted on both ends, DTMF where the
    /// adapter has it, hang up.
    async fn call(
        &mut self,
        caps: &Capabilities,
        control: &Arc<dyn SimControl>,
        session: &dyn Session,
        watch: &mut Watch,
    ) -> Result<(), StepError> {
        let step = "audio call";
        if !caps.calls_audio {
            self.record(
                step,
                Outcome::Skipped(format!("no {}", Feature::CallsAudio)),
            );
            return Ok(());
        }
        let err = |e: cc_sdk::Error| (step, e.to_string());
        control
            .set_call_answer(CallAnswer::Answer)
            .await
            .map_err(err)?;
        let speaker = Arc::new(RecordingSink::new());
        let call = session
            .start_call(CallRequest {
                devices: MediaDevices {
                    audio_in: Some(Arc::new(ToneSource::new(440.0))),
                    audio_out: Some(speaker.clone()),
                    ..MediaDevices::default()
                },
                ..CallRequest::default()
            })
            .await
            .map_err(err)?;
        let id = call.id();
        self.expect(
            step,
            watch,
            "the call connected",
            |e| matches!(e, Event::Call { call, state: CallState::Connected } if *call == id),
        )
        .await?;
        // Media both ways: 25 packets (half a second of audio) on each end.
        let far = match control
            .wait_far_end(STEP_TIMEOUT, &|f| f.stats.audio_packets_received >= 25)
            .await
            .map_err(err)?
        {
            FarEndWait::Done(far) => far,
            FarEndWait::TimedOut(far) => {
                return Err((
                    step,
                    format!("the far end did not receive audio within {STEP_TIMEOUT:?}: {far:?}"),
                ));
            }
        };
        let mine = match wait_call_stats(call.as_ref(), STEP_TIMEOUT, |s| {
            s.audio_packets_received >= 25
        })
        .await
        .map_err(err)?
        {
            StatsWait::Done(mine) => mine,
            StatsWait::TimedOut(mine) => {
                return Err((
                    step,
                    format!("no audio received within {STEP_TIMEOUT:?}: {mine:?}"),
                ));
            }
        };
        let tone = speaker
            .dominant_hz()
            .map_or_else(|| "no tone".to_owned(), |hz| format!("{hz:.0} Hz tone"));
        self.line(&self.paint.dim(&format!(
            "media: {} packets received, far end received {}, codec {}, heard a {tone}",
            mine.audio_packets_received,
            far.stats.audio_packets_received,
            mine.audio_codec.as_deref().unwrap_or("?"),
        )));
        if caps.call_dtmf {
            call.dtmf("42#").await.map_err(err)?;
            let heard = control
                .wait_far_end(STEP_TIMEOUT, &|f| f.stats.dtmf_received.contains("42#"))
                .await
                .map_err(err)?;
            if let FarEndWait::TimedOut(far) = heard {
                return Err((step, format!("the far end did not hear DTMF 42#: {far:?}")));
            }
            self.line(&self.paint.dim("DTMF 42# heard by the far end"));
        }
        call.hangup().await.map_err(err)?;
        self.expect(
            step,
            watch,
            "the call ended",
            |e| matches!(e, Event::Call { call, state: CallState::Ended { .. } } if *call == id),
        )
        .await?;
        self.record(step, Outcome::Passed);
        Ok(())
    }

    async fn reconnect(
        &mut self,
        control: &Arc<dyn SimControl>,
        chat: &SimChat,
        handle: &dyn Engagement,
        watch: &mut Watch,
    ) -> Result<(), StepError> {
        let step = "forced reconnect, nothing lost";
        // Only events after the drop count here: an earlier `Connected` must not satisfy it.
        self.drain(watch);
        watch.unread.clear();
        control
            .drop_connections()
            .await
            .map_err(|e| (step, e.to_string()))?;
        self.expect(step, watch, "Reconnecting", |e| {
            matches!(e, Event::Connection(ConnectionState::Reconnecting { .. }))
        })
        .await?;
        let texts = [
            "Sent while the line was down (1)",
            "Sent while the line was down (2)",
        ];
        let mut ids = Vec::new();
        for t in texts {
            ids.push(
                handle
                    .send(Content::text(t))
                    .await
                    .map_err(|e| (step, e.to_string()))?
                    .client_id,
            );
        }
        self.expect(step, watch, "Connected", |e| {
            matches!(e, Event::Connection(ConnectionState::Connected))
        })
        .await?;
        for id in ids {
            self.expect(
                step,
                watch,
                "MessageSent after the reconnect",
                move |e| matches!(e, Event::MessageSent(m) if m.client_id == Some(id)),
            )
            .await?;
        }
        once_each_in_order(control.as_ref(), chat, &texts)
            .await
            .map_err(|e| (step, e))?;
        let shown = handle
            .transcript()
            .iter()
            .filter(|m| texts.contains(&m.content.as_text().unwrap_or("")))
            .count();
        if shown != texts.len() {
            return Err((
                step,
                format!(
                    "the transcript shows {shown} of the {} messages",
                    texts.len()
                ),
            ));
        }
        self.record(step, Outcome::Passed);
        Ok(())
    }
}

/// Checks that the simulator received each of `texts` exactly once, in this order.
async fn once_each_in_order(
    control: &dyn SimControl,
    chat: &SimChat,
    texts: &[&str],
) -> Result<(), String> {
    let got = server_texts(control, chat).await?;
    for t in texts {
        let n = got.iter().filter(|g| g == t).count();
        if n != 1 {
            return Err(format!("the server has {n} copies of {t:?}"));
        }
    }
    let order: Vec<&str> = got
        .iter()
        .map(String::as_str)
        .filter(|g| texts.contains(g))
        .collect();
    if order != texts {
        return Err(format!("the server received them out of order: {order:?}"));
    }
    Ok(())
}

async fn server_texts(control: &dyn SimControl, chat: &SimChat) -> Result<Vec<String>, String> {
    let got = control.received(chat).await.map_err(|e| e.to_string())?;
    Ok(got
        .into_iter()
        .filter_map(|r| match r {
            Received::Text { text, .. } => Some(text),
            _ => None,
        })
        .collect())
}

/// Polls what the simulator received until `pred` accepts an item; a failure names `step`.
async fn wait_received(
    step: &'static str,
    control: &dyn SimControl,
    chat: &SimChat,
    pred: impl Fn(&Received) -> bool,
) -> Result<(), StepError> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let got = control
            .received(chat)
            .await
            .map_err(|e| (step, e.to_string()))?;
        if got.iter().any(&pred) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err((
                step,
                format!(
                    "the simulator did not receive it within {STEP_TIMEOUT:?} (received: {got:?})"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pause between two sends that keeps under `messages_per_second`, with a margin.
fn handle_rate_gap(messages_per_second: Option<u32>) -> Duration {
    match messages_per_second {
        Some(n) if n > 0 => Duration::from_millis(1000 / u64::from(n) + 100),
        _ => Duration::ZERO,
    }
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn table(lanes: &[Lane], paint: Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n{}", paint.head("Summary"));
    let _ = writeln!(
        out,
        "  {:<12} {:<16} {:>8} {:>8} {:>7} {:>14}",
        "vendor", "transport", "passed", "skipped", "failed", "round trip p50"
    );
    for l in lanes {
        let passed = l
            .steps
            .iter()
            .filter(|(_, o)| *o == Outcome::Passed)
            .count();
        let skipped = l
            .steps
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Skipped(_)))
            .count();
        let failed = l.failed();
        let rtt = median(&l.round_trips).map_or_else(
            || "-".to_owned(),
            |d| format!("{:.2} ms", d.as_secs_f64() * 1000.0),
        );
        let failed_text = format!("{failed:>7}");
        let failed_text = if failed > 0 {
            paint.bad(&failed_text)
        } else {
            failed_text
        };
        let _ = writeln!(
            out,
            "  {:<12} {:<16} {:>8} {:>8} {} {:>14}",
            l.vendor.key(),
            l.transport,
            passed,
            skipped,
            failed_text,
            rtt
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_round_trips() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), Some(ms(2)));
        assert_eq!(median(&[ms(4), ms(1), ms(2), ms(3)]), Some(ms(3)));
    }

    #[test]
    fn sends_are_spaced_by_the_vendor_rate() {
        assert_eq!(handle_rate_gap(None), Duration::ZERO);
        assert_eq!(handle_rate_gap(Some(2)), Duration::from_millis(600));
    }

    #[test]
    fn table_counts_outcomes() {
        let mut lane = Lane::new(Vendor::Genesys, "web-messaging", Paint { color: false }, 1);
        lane.steps.push(("a", Outcome::Passed));
        lane.steps.push(("b", Outcome::Skipped("x".into())));
        lane.steps.push(("c", Outcome::Failed("y".into())));
        lane.round_trips.push(Duration::from_micros(1500));
        let t = table(&[lane], Paint { color: false });
        let row = t.lines().find(|l| l.contains("genesys")).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            ["genesys", "web-messaging", "1", "1", "1", "1.50", "ms"]
        );
    }
}
