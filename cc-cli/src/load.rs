//! `cc-cli load`: N synthetic customers run the chat scenario concurrently, and a report
//! counts what was lost or duplicated and how long messages took.
//!
//! Each customer connects, starts a chat, and until the run's end sends a message, waits for
//! the vendor's acknowledgement (`MessageSent`: the *send* round trip), and, against a
//! simulator, has the agent answer and waits for the answer (`MessageReceived`: the *reply*
//! round trip); then it ends the chat. Customers start spread over `--ramp`.
//!
//! Nothing may be lost or duplicated: against a simulator, every customer message must be on
//! the server exactly once (`SimControl::received`) and every agent answer must arrive
//! exactly once; in every mode each message must appear once in the client's transcript.
//! Against a configuration file (a real entry point, no agent side), only the customer side
//! is checked: acknowledgements and the transcript.
//!
//! Targets must be loopback unless `--allow-remote` is given: every host the configuration
//! names must resolve to loopback addresses only.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cc_sdk::testkit::{Received, SimChat};
use cc_sdk::{ChatRequest, Content, Customer, Event, Role, Session};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::oneshot;

use crate::simproc::SimProcess;
use crate::target::{
    BoxError, Target, TargetArgs, check_loopback, parse_duration, peak_memory, raise_open_files,
    vary,
};

/// Flags of `cc-cli load`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// How many customers run at once.
    #[arg(long, default_value_t = 10)]
    customers: usize,
    /// How long each customer keeps chatting before it ends its chat.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Spread the customers' starts over this time; a quarter of --duration by default.
    #[arg(long, value_parser = parse_duration)]
    ramp: Option<Duration>,
    /// At most this many messages per customer.
    #[arg(long)]
    messages: Option<usize>,
    /// Pause between a customer's messages (never shorter than the vendor's rate limit).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    think: Duration,
    /// How long one step (connect, an acknowledgement, an answer) may take.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    step_timeout: Duration,
    /// A string field of the vendor's section to make unique per customer (`VALUE-<run>-<n>`),
    /// for vendors whose customer identity is in the configuration (repeatable).
    #[arg(long, value_name = "FIELD")]
    vary: Vec<String>,
    /// Allow a target that is not on this machine.
    #[arg(long)]
    allow_remote: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Live counters, shared by every customer and the progress bar.
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    acknowledged: AtomicU64,
    agent_sent: AtomicU64,
    received: AtomicU64,
}

/// What one customer saw.
#[derive(Debug, Default)]
struct CustomerResult {
    send_rtt: Vec<Duration>,
    reply_rtt: Vec<Duration>,
    lost: u64,
    duplicated: u64,
    error: Option<String>,
}

/// The final report.
#[derive(Debug)]
struct Report {
    target: String,
    varied: Vec<String>,
    customers: usize,
    duration: Duration,
    wall: Duration,
    started: u64,
    completed: u64,
    failed: u64,
    sent: u64,
    acknowledged: u64,
    agent_sent: u64,
    received: u64,
    lost: u64,
    duplicated: u64,
    send_rtt: Vec<Duration>,
    reply_rtt: Vec<Duration>,
    peak_memory: Option<u64>,
    sim_peak_memory: Option<u64>,
    errors: Vec<(String, usize)>,
}

impl Report {
    fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.failed == 0
    }
}

/// Runs the load and prints the report; fails when anything was lost, duplicated or failed.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    if args.customers == 0 {
        return Err("--customers must be at least 1".into());
    }
    // Each customer holds a socket for its connection or long poll and opens more while it
    // sends (the simulator, in a process of its own, holds the other ends).
    let want = u64::try_from(args.customers)?
        .saturating_mul(3)
        .saturating_add(1024);
    let limit = raise_open_files(want);
    if limit < want {
        // On stderr: with --json, stdout carries the report only.
        eprintln!(
            "note: {} customers may need about {want} open files; this process may open {limit} (raise it with `ulimit -n`)",
            args.customers
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime
        .block_on(load(args))
        .map_err(|e| e as Box<dyn std::error::Error>)?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &render_json(&report))?;
        writeln!(out)?;
    } else {
        out.write_all(render_text(&report).as_bytes())?;
    }
    out.flush()?;
    if report.clean() {
        Ok(())
    } else {
        Err(format!(
            "{} lost, {} duplicated, {} customers failed",
            report.lost, report.duplicated, report.failed
        )
        .into())
    }
}

/// Hands each simulator chat to its customer: by the customer name the simulator recorded,
/// or else by the chat id, when it is the engagement id the client sees.
#[derive(Default)]
struct Router {
    inner: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    /// Customers waiting for their chat, by name.
    waiting: HashMap<String, oneshot::Sender<SimChat>>,
    /// Engagement id -> customer name.
    aliases: HashMap<String, String>,
    /// Chats no one claimed yet, by customer name and by chat id.
    early: HashMap<String, SimChat>,
}

impl Router {
    fn expect(&self, name: &str) -> oneshot::Receiver<SimChat> {
        let (tx, rx) = oneshot::channel();
        let mut r = self.inner.lock().expect("router");
        match r.early.remove(name) {
            Some(chat) => {
                let _ = tx.send(chat);
            }
            None => {
                r.waiting.insert(name.to_owned(), tx);
            }
        }
        rx
    }

    /// The customer `name` started the engagement `engagement`.
    fn alias(&self, engagement: &str, name: &str) {
        let mut r = self.inner.lock().expect("router");
        match r.early.remove(engagement) {
            Some(chat) => {
                if let Some(tx) = r.waiting.remove(name) {
                    let _ = tx.send(chat);
                }
            }
            None => {
                r.aliases.insert(engagement.to_owned(), name.to_owned());
            }
        }
    }

    fn deliver(&self, chat: SimChat) {
        let mut r = self.inner.lock().expect("router");
        let by_name = chat
            .customer_name
            .clone()
            .filter(|n| r.waiting.contains_key(n));
        let name = by_name.or_else(|| r.aliases.remove(&chat.id));
        if let Some(tx) = name.and_then(|n| r.waiting.remove(&n)) {
            let _ = tx.send(chat);
            return;
        }
        if let Some(n) = &chat.customer_name {
            r.early.insert(n.clone(), chat.clone());
        }
        r.early.insert(chat.id.clone(), chat);
    }
}

/// The string fields of a simulator's configuration that differ between two starts, other
/// than addresses: the customer identity, for vendors that keep it in the configuration, so
/// each synthetic customer gets its own.
async fn identity_fields(
    vendor: cc_sdk::Vendor,
    transport: Option<String>,
    config: &cc_sdk::Config,
) -> Result<Vec<String>, BoxError> {
    let other = crate::target::start_sim(vendor, transport, 0).await?;
    let (Some(a), Some(b)) = (config.raw_section(), other.config.raw_section()) else {
        return Ok(Vec::new());
    };
    let mut fields = Vec::new();
    for (k, v) in a.as_object().into_iter().flatten() {
        if let (Some(x), Some(y)) = (v.as_str(), b.get(k).and_then(|w| w.as_str()))
            && x != y
            && !x.contains("127.0.0.1")
            && !x.contains("://")
            && !looks_like_jwt(x)
        {
            fields.push(k.clone());
        }
    }
    Ok(fields)
}

/// A signed token (base64url parts, the first of JSON text, joined by dots, possibly behind
/// a prefix): changing it would break its signature.
fn looks_like_jwt(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() >= 3
        && v.contains("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '=')
        })
}

/// What the customers connect to: a configuration file, or a simulator in a child process
/// (this program, as `cc-cli sim-worker`), which keeps the server's sockets and memory out of
/// the customers' process.
struct LoadTarget {
    config: cc_sdk::Config,
    sim: Option<Arc<SimProcess>>,
    /// The chats the simulator sees start.
    chats: Option<tokio::sync::mpsc::UnboundedReceiver<SimChat>>,
    description: String,
}

/// A simulator is started on a port of its own ([`cc_sdk::testkit::own_port`]), never
/// behind a fault proxy: the load injects no faults.
async fn open_target(args: &TargetArgs) -> Result<LoadTarget, BoxError> {
    let Some(vendor) = args.sim else {
        let target = Target::open(args).await?;
        return Ok(LoadTarget {
            description: target.describe(),
            config: target.config,
            sim: None,
            chats: None,
        });
    };
    crate::target::sim_entry(vendor)?;
    let port = cc_sdk::testkit::own_port()?;
    let (sim, chats) = SimProcess::start(vendor, args.transport.as_deref(), port).await?;
    Ok(LoadTarget {
        description: format!(
            "{vendor} simulator ({}) on {}, in a process of its own",
            sim.transport, sim.addr
        ),
        config: sim.config.clone(),
        sim: Some(Arc::new(sim)),
        chats: Some(chats),
    })
}

async fn load(args: &Args) -> Result<Report, BoxError> {
    let mut target = open_target(&args.target).await?;
    if !args.allow_remote {
        check_loopback(&target.config).await?;
    }
    let mut vary_fields = args.vary.clone();
    if let (Some(vendor), true) = (args.target.sim, vary_fields.is_empty()) {
        vary_fields =
            identity_fields(vendor, args.target.transport.clone(), &target.config).await?;
    }
    let control = target.sim.clone();
    let router = Arc::new(Router::default());
    if let Some(mut chats) = target.chats.take() {
        let router = Arc::clone(&router);
        tokio::spawn(async move {
            while let Some(chat) = chats.recv().await {
                router.deliver(chat);
            }
        });
    }
    let counters = Arc::new(Counters::default());
    let progress = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(args.customers as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} customers done  {msg}",
            )
            .expect("progress template")
            .progress_chars("=> "),
        );
        pb
    });
    let ticker = progress.clone().map(|pb| {
        let c = Arc::clone(&counters);
        tokio::spawn(async move {
            loop {
                pb.set_position(
                    c.completed.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed),
                );
                pb.set_message(format!(
                    "chatting {}  sent {}  acked {}  answers {}",
                    c.started.load(Ordering::Relaxed)
                        - c.completed.load(Ordering::Relaxed)
                        - c.failed
                            .load(Ordering::Relaxed)
                            .min(c.started.load(Ordering::Relaxed)),
                    c.sent.load(Ordering::Relaxed),
                    c.acknowledged.load(Ordering::Relaxed),
                    c.received.load(Ordering::Relaxed),
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });

    let ramp = args.ramp.unwrap_or(args.duration / 4);
    let t0 = Instant::now();
    let plan = Plan {
        duration: args.duration,
        messages: args.messages.unwrap_or(usize::MAX),
        think: args.think,
        step: args.step_timeout,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..6].to_owned(),
    };
    let plan = Arc::new(plan);
    let mut tasks = Vec::with_capacity(args.customers);
    for i in 0..args.customers {
        let start_at = t0 + ramp.mul_f64(i as f64 / args.customers as f64);
        let config = vary(
            &target.config,
            &vary_fields,
            &format!("{}-{i}", plan.run_id),
        )?;
        let control = control.clone();
        let router = Arc::clone(&router);
        let counters = Arc::clone(&counters);
        let plan = Arc::clone(&plan);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            let r = customer(i, &plan, &config, control, &router, &counters).await;
            if r.error.is_some() {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.completed.fetch_add(1, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| CustomerResult {
            error: Some(format!("customer task panicked: {e}")),
            ..CustomerResult::default()
        }));
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let wall = t0.elapsed();
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut report = Report {
        target: target.description.clone(),
        varied: vary_fields,
        customers: args.customers,
        duration: args.duration,
        wall,
        started: counters.started.load(Ordering::Relaxed),
        completed: counters.completed.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        sent: counters.sent.load(Ordering::Relaxed),
        acknowledged: counters.acknowledged.load(Ordering::Relaxed),
        agent_sent: counters.agent_sent.load(Ordering::Relaxed),
        received: counters.received.load(Ordering::Relaxed),
        lost: 0,
        duplicated: 0,
        send_rtt: Vec::new(),
        reply_rtt: Vec::new(),
        peak_memory: peak_memory(),
        sim_peak_memory: target.sim.as_ref().and_then(|s| s.peak_memory()),
        errors: Vec::new(),
    };
    for r in results {
        report.lost += r.lost;
        report.duplicated += r.duplicated;
        report.send_rtt.extend(r.send_rtt);
        report.reply_rtt.extend(r.reply_rtt);
        if let Some(e) = r.error {
            *errors.entry(e).or_default() += 1;
        }
    }
    report.send_rtt.sort_unstable();
    report.reply_rtt.sort_unstable();
    let mut errors: Vec<(String, usize)> = errors.into_iter().collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    report.errors = errors;
    Ok(report)
}

struct Plan {
    duration: Duration,
    messages: usize,
    think: Duration,
    step: Duration,
    run_id: String,
}

/// A customer's event stream, counting every agent message as it passes.
struct Watch {
    stream: cc_sdk::EventStream,
    answers: HashMap<String, u32>,
    step: Duration,
}

impl Watch {
    fn tally(&mut self, ev: &Event) {
        if let Event::MessageReceived(m) = ev
            && m.sender.role != Role::Customer
            && let Some(id) = &m.id
        {
            *self.answers.entry(id.as_str().to_owned()).or_default() += 1;
        }
    }

    async fn wait(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Result<Event, String> {
        let deadline = tokio::time::Instant::now() + self.step;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(format!("no {what} within {:?}", self.step)),
                Ok(None) => return Err(format!("the session closed before {what}")),
                Ok(Some(ev)) => {
                    self.tally(&ev);
                    if pred(&ev) {
                        return Ok(ev);
                    }
                }
            }
        }
    }

    /// Reads what is already there, without waiting.
    fn drain(&mut self) {
        while let Some(Some(ev)) = futures::FutureExt::now_or_never(self.stream.next()) {
            self.tally(&ev);
        }
    }
}

async fn customer(
    i: usize,
    plan: &Plan,
    config: &cc_sdk::Config,
    control: Option<Arc<SimProcess>>,
    router: &Router,
    counters: &Counters,
) -> CustomerResult {
    let mut result = CustomerResult::default();
    let name = customer_name(plan, i);
    let config = match identity(config, &name, control.is_some()).await {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(format!("customer token: {e}"));
            return result;
        }
    };
    let session = match tokio::time::timeout(plan.step, cc_sdk::connect(&config)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            result.error = Some(format!("connect: {}", cc_sdk::error_with_causes(&e)));
            return result;
        }
        Err(_) => {
            result.error = Some(format!("connect: no answer within {:?}", plan.step));
            return result;
        }
    };
    if let Err(e) = scenario(
        i,
        plan,
        session.as_ref(),
        control,
        router,
        counters,
        &mut result,
    )
    .await
    {
        result.error = Some(e);
    }
    let _ = session.shutdown().await;
    result
}

/// The name of customer `i` (its id and nickname, and how the simulator's chat finds it).
fn customer_name(plan: &Plan, i: usize) -> String {
    format!("load-{}-{i:05}", plan.run_id)
}

/// The configuration customer `name` connects with. Against the Avaya simulator each
/// customer gets its own token from the simulator's backend token endpoint: AXP knows a
/// customer by the JWT's `sub`, and every session of one customer sees every ongoing
/// engagement of that customer, so thousands of sessions sharing the simulator's one token
/// would be one customer with thousands of chats, each new session listing all of them.
async fn identity(
    config: &cc_sdk::Config,
    name: &str,
    simulated: bool,
) -> Result<cc_sdk::Config, String> {
    if simulated && config.vendor == cc_sdk::Vendor::Avaya {
        return cc_sdk::avaya::sim::customer_config(config, name)
            .await
            .map_err(|e| cc_sdk::error_with_causes(&e));
    }
    Ok(config.clone())
}

async fn scenario(
    i: usize,
    plan: &Plan,
    session: &dyn Session,
    control: Option<Arc<SimProcess>>,
    router: &Router,
    counters: &Counters,
    result: &mut CustomerResult,
) -> Result<(), String> {
    let start = Instant::now();
    let name = customer_name(plan, i);
    let mut watch = Watch {
        stream: session.events(),
        answers: HashMap::new(),
        step: plan.step,
    };
    let caps = session.capabilities();
    let gap = match caps.messages_per_second {
        Some(n) if n > 0 => Duration::from_millis(1000 / u64::from(n) + 100),
        _ => Duration::ZERO,
    }
    .max(plan.think);

    let routed = control.as_ref().map(|_| router.expect(&name));
    let request = ChatRequest {
        customer: Customer {
            id: Some(name.clone()),
            nickname: Some(name.clone()),
            ..Customer::default()
        },
        subject: Some("load test".into()),
        ..ChatRequest::default()
    };
    let chat = tokio::time::timeout(plan.step, session.start_chat(request))
        .await
        .map_err(|_| format!("start a chat: no answer within {:?}", plan.step))?
        .map_err(|e| format!("start a chat: {}", cc_sdk::error_with_causes(&e)))?;
    router.alias(chat.id().as_str(), &name);
    let sim_chat = match routed {
        Some(rx) => Some(
            tokio::time::timeout(plan.step, rx)
                .await
                .map_err(|_| format!("the simulator saw no chat within {:?}", plan.step))?
                .map_err(|_| "the simulator's chat router stopped".to_owned())?,
        ),
        None => None,
    };
    counters.started.fetch_add(1, Ordering::Relaxed);
    if let (Some(control), Some(sc)) = (&control, &sim_chat) {
        control
            .agent_joins(sc, "Load Agent")
            .await
            .map_err(|e| format!("agent joins: {e}"))?;
        watch
            .wait("the agent joining", |e| {
                matches!(e, Event::ParticipantJoined { participant, .. } if participant.role == Role::Agent)
            })
            .await?;
    }

    let mut sent_texts = Vec::new();
    let mut sent_ids = Vec::new();
    let mut agent_ids = Vec::new();
    let mut failure = None;
    let mut j = 0;
    while j < plan.messages && start.elapsed() < plan.duration {
        if j > 0 {
            tokio::time::sleep(gap).await;
        }
        j += 1;
        let text = format!("{name} message {j}");
        let t0 = Instant::now();
        let sent = match chat.send(Content::text(text.clone())).await {
            Ok(s) => s,
            Err(e) => {
                failure = Some(format!("send: {}", cc_sdk::error_with_causes(&e)));
                break;
            }
        };
        counters.sent.fetch_add(1, Ordering::Relaxed);
        sent_texts.push(text);
        sent_ids.push(sent.client_id);
        let id = sent.client_id;
        match watch
            .wait("MessageSent", move |e| {
                matches!(e, Event::MessageSent(m) if m.client_id == Some(id))
                    || matches!(e, Event::MessageFailed { client_id, .. } if *client_id == id)
            })
            .await
        {
            Ok(Event::MessageSent(_)) => {
                result.send_rtt.push(t0.elapsed());
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Ok(ev) => {
                failure = Some(format!("send: {}", cc_sdk::testkit::describe(&ev)));
                break;
            }
            Err(e) => {
                failure = Some(format!("acknowledgement: {e}"));
                break;
            }
        }
        if let (Some(control), Some(sc)) = (&control, &sim_chat) {
            let t1 = Instant::now();
            let answer = format!("answer {j} to {name}");
            let id = control
                .agent_says(sc, &answer)
                .await
                .map_err(|e| format!("agent says: {e}"))?;
            counters.agent_sent.fetch_add(1, Ordering::Relaxed);
            agent_ids.push(id.clone());
            let seen = watch.answers.get(&id).copied().unwrap_or(0) > 0;
            if !seen {
                let want = id.clone();
                if let Err(e) = watch
                    .wait("the agent's answer", move |e| {
                        matches!(e, Event::MessageReceived(m) if m.id.as_ref().is_some_and(|i| i.as_str() == want))
                    })
                    .await
                {
                    failure = Some(format!("answer: {e}"));
                    break;
                }
            }
            result.reply_rtt.push(t1.elapsed());
            counters.received.fetch_add(1, Ordering::Relaxed);
        }
    }

    watch.drain();
    // Exactly once, on both sides.
    let transcript = chat.transcript();
    for id in &sent_ids {
        let n = transcript
            .iter()
            .filter(|m| m.client_id == Some(*id))
            .count();
        if n == 0 {
            result.lost += 1;
        } else if n > 1 {
            result.duplicated += n as u64 - 1;
        }
    }
    for id in &agent_ids {
        let events = watch.answers.get(id).copied().unwrap_or(0);
        let shown = transcript
            .iter()
            .filter(|m| m.id.as_ref().is_some_and(|m| m.as_str() == id))
            .count();
        if events == 0 {
            result.lost += 1;
        } else {
            result.duplicated += u64::from(events - 1) + shown.saturating_sub(1) as u64;
        }
    }
    if let (Some(control), Some(sc)) = (&control, &sim_chat) {
        let got = control
            .received(sc)
            .await
            .map_err(|e| format!("received: {e}"))?;
        for t in &sent_texts {
            let n = got
                .iter()
                .filter(|r| matches!(r, Received::Text { text, .. } if text == t))
                .count();
            if n == 0 {
                // Not on the server, although the transcript may show it as pending.
                result.lost += 1;
            } else if n > 1 {
                result.duplicated += n as u64 - 1;
            }
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }

    chat.end(None)
        .await
        .map_err(|e| format!("end: {}", cc_sdk::error_with_causes(&e)))?;
    let me = chat.id();
    watch
        .wait(
            "EngagementEnded",
            move |e| matches!(e, Event::EngagementEnded { engagement, .. } if *engagement == me),
        )
        .await?;
    Ok(())
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1000.0),
    )
}

fn render_text(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "load: {} customers for {:?} against {} (wall time {:.1} s)\n",
        r.customers,
        r.duration,
        r.target,
        r.wall.as_secs_f64()
    ));
    if !r.varied.is_empty() {
        s.push_str(&format!(
            "one customer identity each: {} varied per customer\n",
            r.varied.join(", ")
        ));
    }
    s.push_str(&format!(
        "sessions: started {}, completed {}, failed {}\n",
        r.started, r.completed, r.failed
    ));
    s.push_str(&format!(
        "messages: customers sent {}, acknowledged {}; agents sent {}, customers received {}\n",
        r.sent, r.acknowledged, r.agent_sent, r.received
    ));
    s.push_str(&format!("lost: {}  duplicated: {}\n", r.lost, r.duplicated));
    for (label, v) in [
        ("send -> MessageSent", &r.send_rtt),
        ("agent -> MessageReceived", &r.reply_rtt),
    ] {
        s.push_str(&format!(
            "round trip {label:<26} p50 {:>10}  p95 {:>10}  p99 {:>10}  (n={})\n",
            ms(quantile(v, 0.50)),
            ms(quantile(v, 0.95)),
            ms(quantile(v, 0.99)),
            v.len()
        ));
    }
    match r.peak_memory {
        Some(b) => s.push_str(&format!(
            "peak memory (VmHWM, customers' process): {:.1} MiB, {:.1} KiB per customer\n",
            b as f64 / (1024.0 * 1024.0),
            b as f64 / 1024.0 / r.customers as f64
        )),
        None => s.push_str("peak memory: unknown (no /proc/self/status)\n"),
    }
    if let Some(b) = r.sim_peak_memory {
        s.push_str(&format!(
            "peak memory (VmHWM, simulator process): {:.1} MiB\n",
            b as f64 / (1024.0 * 1024.0)
        ));
    }
    for (e, n) in &r.errors {
        s.push_str(&format!("error ({n}x): {e}\n"));
    }
    s
}

fn render_json(r: &Report) -> serde_json::Value {
    let q = |v: &Vec<Duration>| {
        json!({
            "n": v.len(),
            "p50_ms": quantile(v, 0.50).map(|d| d.as_secs_f64() * 1000.0),
            "p95_ms": quantile(v, 0.95).map(|d| d.as_secs_f64() * 1000.0),
            "p99_ms": quantile(v, 0.99).map(|d| d.as_secs_f64() * 1000.0),
        })
    };
    json!({
        "target": r.target,
        "customers": r.customers,
        "varied_fields": r.varied,
        "duration_s": r.duration.as_secs_f64(),
        "wall_s": r.wall.as_secs_f64(),
        "sessions": {"started": r.started, "completed": r.completed, "failed": r.failed},
        "messages": {
            "sent": r.sent,
            "acknowledged": r.acknowledged,
            "agent_sent": r.agent_sent,
            "received": r.received,
            "lost": r.lost,
            "duplicated": r.duplicated,
        },
        "round_trip": {"send": q(&r.send_rtt), "reply": q(&r.reply_rtt)},
        "peak_memory_bytes": r.peak_memory,
        "sim_peak_memory_bytes": r.sim_peak_memory,
        "errors": r.errors.iter().map(|(e, n)| json!({"error": e, "count": n})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_are_not_varied() {
        assert!(looks_like_jwt(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        ));
        assert!(looks_like_jwt(
            "jwt.eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2ln"
        ));
        assert!(!looks_like_jwt("customer-3a525094704a43ad"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("www.example.com"));
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.50), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&v, 0.95), Some(Duration::from_millis(95)));
        assert_eq!(quantile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&v[..1], 0.99), Some(Duration::from_millis(1)));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn the_router_hands_each_chat_to_its_customer_in_any_order() {
        let r = Router::default();
        let chat = |n: &str| SimChat {
            id: format!("id-{n}"),
            customer_name: Some(n.to_owned()),
        };
        let mut a = r.expect("a");
        r.deliver(chat("b"));
        r.deliver(chat("a"));
        let mut b = r.expect("b");
        assert_eq!(a.try_recv().unwrap().id, "id-a");
        assert_eq!(b.try_recv().unwrap().id, "id-b");
    }

    #[test]
    fn without_a_customer_name_the_router_matches_the_engagement_id() {
        let r = Router::default();
        let anon = |id: &str| SimChat {
            id: id.to_owned(),
            customer_name: None,
        };
        // The chat reaches the simulator before the client knows its engagement id...
        let mut a = r.expect("a");
        r.deliver(anon("e1"));
        r.alias("e1", "a");
        assert_eq!(a.try_recv().unwrap().id, "e1");
        // ...or after.
        let mut b = r.expect("b");
        r.alias("e2", "b");
        r.deliver(anon("e2"));
        assert_eq!(b.try_recv().unwrap().id, "e2");
    }

    #[test]
    fn a_report_is_clean_only_without_loss_duplicates_or_failures() {
        let mut r = Report {
            target: "t".into(),
            varied: vec![],
            customers: 2,
            duration: Duration::from_secs(1),
            wall: Duration::from_secs(2),
            started: 2,
            completed: 2,
            failed: 0,
            sent: 4,
            acknowledged: 4,
            agent_sent: 4,
            received: 4,
            lost: 0,
            duplicated: 0,
            send_rtt: vec![Duration::from_millis(2)],
            reply_rtt: vec![Duration::from_millis(3)],
            peak_memory: Some(2 << 20),
            sim_peak_memory: Some(3 << 20),
            errors: vec![],
        };
        assert!(r.clean());
        let text = render_text(&r);
        assert!(text.contains("lost: 0  duplicated: 0"), "{text}");
        assert!(
            text.contains(
                "peak memory (VmHWM, customers' process): 2.0 MiB, 1024.0 KiB per customer"
            ),
            "{text}"
        );
        assert!(
            text.contains("peak memory (VmHWM, simulator process): 3.0 MiB"),
            "{text}"
        );
        r.duplicated = 1;
        assert!(!r.clean());
        assert_eq!(render_json(&r)["messages"]["duplicated"], 1);
    }
}
