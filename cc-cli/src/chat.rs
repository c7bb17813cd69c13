//! `cc-cli chat`: a terminal chat as the customer.
//!
//! The transcript scrolls above a prompt; agent joins, queue position, typing indicators and
//! the connection state are shown as `*` lines. Commands: `/file PATH` uploads a file, `/end`
//! ends the chat, `/leave` detaches (Ctrl-C does the same), `/typing on|off`, `/help`.
//!
//! Two input modes: interactive (raw terminal, the customer's typing indicator follows the
//! input line) and plain (`--plain`, or whenever stdin is not a terminal): one line of stdin
//! is one message or command, and every event is one line of stdout, so scripts and tests
//! drive it with pipes.
//!
//! Leaving and resuming: Ctrl-C (or end of input) detaches from the chat without ending it
//! when the adapter supports `leave`, and ends it otherwise. The state file (`--state`, by
//! default next to the configuration file, readable by this user only) keeps the customer id
//! this program generated, the chat's id, and the adapter's resume settings
//! (`Session::resume_settings`, e.g. a session token). The next run merges those settings
//! into the configuration's vendor section, connects as the same customer, asks the session
//! for its ongoing engagements and continues the saved chat (showing the transcript so far),
//! or starts a new one when the adapter did not resume it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cc_sdk::testkit::{Received, SimControl};
use cc_sdk::{
    ChatRequest, Config, ConnectionState, Content, Customer, Engagement, EngagementState, Event,
    Initiator, Message, Participant, Role, Session, Upload,
};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::target::{BoxError, Target, TargetArgs};

/// Flags of `cc-cli chat`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// Line-oriented mode: one stdin line per message or command, one stdout line per event
    /// (also chosen when stdin is not a terminal).
    #[arg(long)]
    plain: bool,
    /// Where to keep the customer id and the open chat between runs; by default the
    /// configuration file's path with `.state.json` appended (no state with --sim).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Start a new chat even when the state file names an open one.
    #[arg(long)]
    new: bool,
    /// The customer's name, shown to the agent.
    #[arg(long, default_value = "Terminal Customer")]
    name: String,
    /// The customer's email address.
    #[arg(long)]
    email: Option<String>,
    /// The chat's subject, shown to the agent.
    #[arg(long)]
    subject: Option<String>,
    /// With --sim: no simulated agent (by default one joins and echoes what you write).
    #[arg(long)]
    no_agent: bool,
}

/// What a run keeps for the next one.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// The vendor the state belongs to.
    vendor: String,
    /// The customer id this program generated, sent as `Customer::id`.
    customer_id: String,
    /// The open chat, if the last run left one open.
    engagement: Option<String>,
    /// The adapter's resume settings (`Session::resume_settings`, a JSON object merged into
    /// the vendor's section on the next run); usually holds a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<String>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("vendor", &self.vendor)
            .field("customer_id", &self.customer_id)
            .field("engagement", &self.engagement)
            .field("resume", &self.resume.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl State {
    fn load(path: &Path) -> Result<Option<State>, BoxError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).map_err(|e| {
                format!(
                    "state file {}: {e} (delete it to start over)",
                    path.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("state file {}: {e}", path.display()).into()),
        }
    }

    /// Writes the state, readable by this user only (it may hold a session token).
    fn save(&self, path: &Path) -> Result<(), BoxError> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("state file {}: {e}", path.display()).into())
    }

    /// Keeps the session's current resume settings.
    fn remember(&mut self, session: &dyn Session) {
        if let Some(s) = session.resume_settings() {
            self.resume = Some(s.expose().to_owned());
        }
    }
}

/// `config` with the saved resume settings merged into its vendor section.
fn with_resume(config: &Config, settings: &str) -> Result<Config, BoxError> {
    let Value::Object(extra) = serde_json::from_str(settings)
        .map_err(|e| format!("state file: resume settings are not JSON: {e}"))?
    else {
        return Err("state file: resume settings are not a JSON object".into());
    };
    crate::target::with_section_values(config, extra)
}

/// Runs the chat until it ends or the customer leaves.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let plain = args.plain || !std::io::stdin().is_terminal();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut screen = Screen::new(!plain);
    let result = runtime.block_on(async {
        let (tx, rx) = mpsc::unbounded_channel();
        if plain {
            spawn_plain_input(tx);
        } else {
            spawn_terminal_input(tx)?;
        }
        let r = chat(args, &mut screen, out, rx).await;
        screen.finish(out);
        r
    });
    // The stdin reader may be blocked in a read: do not wait for it.
    runtime.shutdown_background();
    result.map_err(|e| e as Box<dyn std::error::Error>)
}

/// What the customer did.
#[derive(Debug)]
enum Input {
    /// A finished line.
    Line(String),
    /// The line being typed changed (interactive mode): what it holds now.
    Editing { line: String },
    /// Ctrl-C or end of input: leave without ending.
    Leave,
}

fn spawn_plain_input(tx: mpsc::UnboundedSender<Input>) {
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if tx.send(Input::Line(line)).is_err() {
                        return;
                    }
                }
                Ok(None) | Err(_) => {
                    let _ = tx.send(Input::Leave);
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = ctrl_c.send(Input::Leave);
        }
    });
}

/// Interactive input: raw mode, a thread reading keys, the line edited here.
fn spawn_terminal_input(tx: mpsc::UnboundedSender<Input>) -> Result<(), BoxError> {
    crossterm::terminal::enable_raw_mode()?;
    std::thread::spawn(move || {
        let mut line = String::new();
        while let Ok(ev) = crossterm::event::read() {
            let TermEvent::Key(KeyEvent {
                code,
                modifiers,
                kind: KeyEventKind::Press | KeyEventKind::Repeat,
                ..
            }) = ev
            else {
                continue;
            };
            let ctrl = modifiers.contains(KeyModifiers::CONTROL);
            let input = match code {
                KeyCode::Char('c') if ctrl => Input::Leave,
                KeyCode::Char('d') if ctrl && line.is_empty() => Input::Leave,
                KeyCode::Char('u') if ctrl => {
                    line.clear();
                    Input::Editing { line: line.clone() }
                }
                KeyCode::Char(c) if !ctrl => {
                    line.push(c);
                    Input::Editing { line: line.clone() }
                }
                KeyCode::Backspace => {
                    line.pop();
                    Input::Editing { line: line.clone() }
                }
                KeyCode::Enter => Input::Line(std::mem::take(&mut line)),
                _ => continue,
            };
            let leave = matches!(input, Input::Leave);
            if tx.send(input).is_err() || leave {
                return;
            }
        }
    });
    Ok(())
}

/// Where lines go: stdout as is (plain), or above a redrawn prompt (interactive).
struct Screen {
    interactive: bool,
    /// The input line as the customer sees it (interactive mode mirrors the key thread).
    buffer: String,
    /// Who is typing, shown in the prompt.
    typing: Option<String>,
}

impl Screen {
    fn new(interactive: bool) -> Self {
        Screen {
            interactive,
            buffer: String::new(),
            typing: None,
        }
    }

    fn line(&mut self, out: &mut dyn Write, text: &str) {
        if self.interactive {
            let _ = write!(out, "\r\x1b[2K{}\r\n", text.replace('\n', "\r\n  "));
            self.prompt(out);
        } else {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    fn prompt(&mut self, out: &mut dyn Write) {
        if !self.interactive {
            return;
        }
        let status = self
            .typing
            .as_deref()
            .map(|who| format!("({who} is typing…) "))
            .unwrap_or_default();
        let _ = write!(out, "\r\x1b[2K{status}> {}", self.buffer);
        let _ = out.flush();
    }

    fn finish(&mut self, out: &mut dyn Write) {
        if self.interactive {
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

const HELP: &str = "type a message and press Enter; commands: /file PATH (send a file), \
                    /typing on|off, /end (end the chat), /leave or Ctrl-C (leave it open, \
                    resume on the next run), //text (send text starting with /), /help";

async fn chat(
    args: &Args,
    screen: &mut Screen,
    out: &mut dyn Write,
    mut input: mpsc::UnboundedReceiver<Input>,
) -> Result<(), BoxError> {
    let target = Target::open(&args.target).await?;
    let state_path = match (&args.state, &args.target.config) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(config)) if target.sim.is_none() => {
            let mut p = config.clone().into_os_string();
            p.push(".state.json");
            Some(PathBuf::from(p))
        }
        _ => None,
    };
    let vendor = target.config.vendor;
    let mut state = match &state_path {
        Some(p) => State::load(p)?.filter(|s| s.vendor == vendor.key()),
        None => None,
    }
    .unwrap_or_else(|| State {
        vendor: vendor.key().to_owned(),
        customer_id: format!("cc-cli-{}", uuid::Uuid::new_v4()),
        engagement: None,
        resume: None,
    });
    if args.new {
        state.engagement = None;
        state.resume = None;
    }
    if let Some(p) = &state_path {
        state.save(p)?;
    }
    screen.line(out, &format!("* connecting to {}", target.describe()));
    if let Some(sim) = &target.sim
        && !args.no_agent
    {
        tokio::spawn(auto_agent(Arc::clone(&sim.control)));
    }

    // Connect with the saved resume settings when a chat was left open; without them if
    // they no longer work.
    let resumed_config = match (&state.engagement, &state.resume) {
        (Some(_), Some(settings)) => Some(with_resume(&target.config, settings)?),
        _ => None,
    };
    let session = match resumed_config {
        Some(config) => match cc_sdk::connect(&config).await {
            Ok(s) => s,
            Err(e) => {
                screen.line(out, &format!("* cannot resume the saved chat ({e})"));
                state.engagement = None;
                state.resume = None;
                cc_sdk::connect(&target.config).await?
            }
        },
        None => cc_sdk::connect(&target.config).await?,
    };
    let mut events = session.events();
    let caps = session.capabilities();
    let customer = Customer {
        id: Some(state.customer_id.clone()),
        nickname: Some(args.name.clone()),
        email: args.email.clone(),
        ..Customer::default()
    };

    let chat = match resumable(session.as_ref(), &state).await {
        Some(chat) => {
            screen.line(out, &format!("* chat resumed ({})", chat.id()));
            let mut earlier = chat.transcript();
            // A resumed chat may start with an empty transcript: show the newest page of the
            // server's history instead, where the vendor keeps one.
            if earlier.is_empty()
                && caps.history
                && let Ok(mut pager) = chat.history(25).await
                && let Ok(Some(page)) = pager.previous_page().await
            {
                earlier = page.messages;
            }
            for m in earlier {
                screen.line(out, &render_message(&m));
            }
            chat
        }
        None => {
            if state.engagement.is_some() {
                screen.line(
                    out,
                    "* the saved chat is no longer open here; starting a new one",
                );
            }
            let request = ChatRequest {
                customer,
                subject: args.subject.clone(),
                ..ChatRequest::default()
            };
            let chat = session.start_chat(request).await?;
            screen.line(out, &format!("* chat started ({})", chat.id()));
            chat
        }
    };
    state.engagement = Some(chat.id().as_str().to_owned());
    state.remember(session.as_ref());
    if let Some(p) = &state_path {
        state.save(p)?;
    }
    screen.line(out, &format!("* {HELP}"));
    screen.prompt(out);

    let mut typing_sent = false;
    let outcome = loop {
        tokio::select! {
            ev = events.next() => {
                let Some(ev) = ev else { break Outcome::Closed };
                if let Event::Typing { participant, on, engagement } = &ev
                    && *engagement == chat.id()
                    && participant.role != Role::Customer
                {
                    screen.typing = on.then(|| name(participant));
                }
                if let Some(text) = render_event(&ev, &chat.id()) {
                    screen.line(out, &text);
                }
                if let Event::EngagementEnded { engagement, .. } = &ev
                    && *engagement == chat.id()
                {
                    break Outcome::Ended;
                }
                if let Event::ShutDown { .. } = ev {
                    break Outcome::Closed;
                }
            }
            inp = input.recv() => {
                match inp {
                    None | Some(Input::Leave) => break Outcome::Leave,
                    Some(Input::Editing { line }) => {
                        let empty = line.is_empty();
                        screen.buffer = line;
                        screen.prompt(out);
                        if caps.typing_out && typing_sent == empty {
                            typing_sent = !empty;
                            let _ = chat.typing(!empty).await;
                        }
                    }
                    Some(Input::Line(line)) => {
                        screen.buffer.clear();
                        if typing_sent {
                            typing_sent = false;
                            let _ = chat.typing(false).await;
                        }
                        match command(&line) {
                            Command::Text(t) => {
                                if let Err(e) = chat.send(Content::text(t)).await {
                                    screen.line(out, &format!("! not sent: {e}"));
                                }
                            }
                            Command::End => {
                                match chat.end(None).await {
                                    Ok(()) => break Outcome::EndRequested,
                                    Err(e) => screen.line(out, &format!("! cannot end the chat: {e}")),
                                }
                            }
                            Command::Leave => break Outcome::Leave,
                            Command::File(path) => match read_upload(&path) {
                                Ok(file) => {
                                    let label = format!("{} ({} bytes)", file.name, file.bytes.len());
                                    match chat.upload(file).await {
                                        Ok(_) => screen.line(out, &format!("* sending file {label}")),
                                        Err(e) => screen.line(out, &format!("! file not sent: {e}")),
                                    }
                                }
                                Err(e) => screen.line(out, &format!("! {e}")),
                            },
                            Command::Typing(on) => match chat.typing(on).await {
                                Ok(()) => typing_sent = on,
                                Err(e) => screen.line(out, &format!("! {e}")),
                            },
                            Command::Help => screen.line(out, &format!("* {HELP}")),
                            Command::Nothing => screen.prompt(out),
                            Command::Unknown(c) => screen.line(out, &format!("! unknown command {c} (/help)")),
                        }
                        screen.prompt(out);
                    }
                }
            }
        }
    };

    match outcome {
        Outcome::EndRequested => {
            // Show the end as the vendor confirms it.
            let wait = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(ev) = events.next().await {
                    if let Some(text) = render_event(&ev, &chat.id()) {
                        screen.line(out, &text);
                    }
                    if matches!(&ev, Event::EngagementEnded { engagement, .. } if *engagement == chat.id())
                    {
                        return;
                    }
                }
            });
            if wait.await.is_err() {
                screen.line(out, "! the end of the chat was not confirmed within 10 s");
            }
            state.engagement = None;
        }
        Outcome::Ended | Outcome::Closed => state.engagement = None,
        Outcome::Leave => {
            if caps.leave {
                state.remember(session.as_ref());
                match chat.leave().await {
                    Ok(()) => screen.line(
                        out,
                        "* left the chat; it stays open: run the same command again to resume it",
                    ),
                    Err(e) => {
                        screen.line(out, &format!("! could not leave the chat open: {e}"));
                        state.engagement = None;
                    }
                }
            } else {
                screen.line(
                    out,
                    &format!(
                        "* the {} adapter cannot keep a chat open without this program: ending it",
                        vendor.key()
                    ),
                );
                let _ = chat.end(None).await;
                state.engagement = None;
            }
        }
    }
    if state.engagement.is_none() {
        state.resume = None;
    }
    if let Some(p) = &state_path {
        state.save(p)?;
    }
    let _ = session.shutdown().await;
    Ok(())
}

enum Outcome {
    /// The customer asked to end; wait for the confirmation.
    EndRequested,
    /// The chat ended (agent, system, or confirmed).
    Ended,
    /// The session closed.
    Closed,
    /// Leave without ending.
    Leave,
}

/// The saved chat among the session's ongoing engagements, if the adapter resumed it.
async fn resumable(session: &dyn Session, state: &State) -> Option<Arc<dyn Engagement>> {
    let want = state.engagement.as_deref()?;
    let ongoing = session.engagements().await.ok()?;
    ongoing
        .into_iter()
        .find(|e| e.id().as_str() == want && e.state() != EngagementState::Ended)
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Text(String),
    File(String),
    Typing(bool),
    End,
    Leave,
    Help,
    Nothing,
    Unknown(String),
}

fn command(line: &str) -> Command {
    let trimmed = line.trim();
    if let Some(rest) = trimmed.strip_prefix("//") {
        return Command::Text(format!("/{rest}"));
    }
    if trimmed.is_empty() {
        return Command::Nothing;
    }
    let Some(cmd) = trimmed.strip_prefix('/') else {
        return Command::Text(line.to_owned());
    };
    let (name, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
    let arg = arg.trim();
    match (name, arg) {
        ("end", "") => Command::End,
        ("leave" | "quit", "") => Command::Leave,
        ("help", _) => Command::Help,
        ("file", path) if !path.is_empty() => Command::File(path.to_owned()),
        ("typing", "on") => Command::Typing(true),
        ("typing", "off") => Command::Typing(false),
        _ => Command::Unknown(format!("/{cmd}")),
    }
}

fn read_upload(path: &str) -> Result<Upload, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned());
    Ok(Upload {
        mime_type: mime_type(&name).to_owned(),
        name,
        bytes: Arc::from(bytes),
    })
}

fn mime_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

fn name(p: &Participant) -> String {
    p.display_name.clone().unwrap_or_else(|| match p.role {
        Role::Customer => "you".to_owned(),
        Role::Agent => "the agent".to_owned(),
        Role::Bot => "the bot".to_owned(),
        Role::System => "the contact center".to_owned(),
    })
}

fn render_content(c: &Content) -> String {
    match c {
        Content::Text(t) => t.clone(),
        Content::File(a) => match a.size {
            Some(size) => format!("[file {} ({size} bytes, {})]", a.name, a.mime_type),
            None => format!("[file {} ({})]", a.name, a.mime_type),
        },
        Content::Rich(r) => match r {
            cc_sdk::RichContent::QuickReplies { text, replies } => format!(
                "{text} [replies: {}]",
                replies
                    .iter()
                    .map(|a| a.label.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
            cc_sdk::RichContent::Buttons { text, buttons } => format!(
                "{text} [buttons: {}]",
                buttons
                    .iter()
                    .map(|a| a.label.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
            cc_sdk::RichContent::Card(card) => format!("[card {}]", card.title),
            cc_sdk::RichContent::Carousel { cards } => format!("[{} cards]", cards.len()),
            cc_sdk::RichContent::Form { title, .. } => format!("[form {title}]"),
        },
        Content::Notice(n) => format!("[notice {}]", n.kind),
    }
}

fn render_message(m: &Message) -> String {
    let who = if m.sender.role == Role::Customer {
        "you".to_owned()
    } else {
        name(&m.sender)
    };
    format!("{who}: {}", render_content(&m.content))
}

fn secs(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

/// One line for an event of this chat (or the session), `None` for events not shown.
fn render_event(ev: &Event, chat: &cc_sdk::EngagementId) -> Option<String> {
    if ev.engagement().is_some_and(|e| e != chat) {
        return None;
    }
    Some(match ev {
        Event::Connection(ConnectionState::Connecting) => "* connecting".to_owned(),
        Event::Connection(ConnectionState::Connected) => "* connected".to_owned(),
        Event::Connection(ConnectionState::Reconnecting { attempt, delay }) => format!(
            "* connection lost, reconnecting (attempt {attempt}, in {} ms)",
            delay.as_millis()
        ),
        Event::Connection(ConnectionState::Disconnected { reason }) => {
            format!("* disconnected: {reason}")
        }
        Event::EngagementStarted { .. } => return None,
        Event::Queued {
            position,
            expected_wait,
            ..
        } => {
            let mut s = "* waiting in the queue".to_owned();
            if let Some(p) = position {
                s.push_str(&format!(", position {p}"));
            }
            if let Some(w) = expected_wait {
                s.push_str(&format!(", expected wait {}", secs(*w)));
            }
            s
        }
        Event::ParticipantJoined { participant, .. } if participant.role != Role::Customer => {
            format!("* {} joined", name(participant))
        }
        Event::ParticipantLeft { participant, .. } if participant.role != Role::Customer => {
            format!("* {} left", name(participant))
        }
        Event::EngagementEnded {
            initiator, reason, ..
        } => {
            let by = match initiator {
                Initiator::Customer => " by you",
                Initiator::Agent => " by the agent",
                Initiator::System => " by the contact center",
                Initiator::Unknown => "",
            };
            let why = reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            format!("* the chat was ended{by}{why}")
        }
        Event::MessageReceived(m) => render_message(m),
        Event::MessageSent(m) => format!("you: {}", render_content(&m.content)),
        Event::MessageRead { .. } => "* the agent read your messages".to_owned(),
        Event::MessageFailed { error, .. } => format!("! a message could not be sent: {error}"),
        Event::Typing {
            participant, on, ..
        } if participant.role != Role::Customer => {
            if *on {
                format!("* {} is typing", name(participant))
            } else {
                format!("* {} stopped typing", name(participant))
            }
        }
        Event::TokenExpiring { in_ } => format!("! the session token expires in {}", secs(*in_)),
        Event::TokenExpired => "! the session token expired".to_owned(),
        Event::IdleWarning { grace, .. } => format!(
            "! the chat is idle and closes in {} unless you write",
            secs(*grace)
        ),
        Event::ShutDown { reason } => format!("* session closed: {reason}"),
        Event::Error(e) => format!("! {e}"),
        Event::Lagged { missed } => format!("! {missed} events were missed"),
        _ => return None,
    })
}

/// The simulated agent of `chat --sim`: puts each new chat in the queue, joins, greets, and
/// answers every message and file.
async fn auto_agent(control: Arc<dyn SimControl>) {
    loop {
        if let Ok(chat) = control.wait_for_chat(Duration::from_secs(3600)).await {
            tokio::spawn(serve_chat(Arc::clone(&control), chat));
        }
    }
}

async fn serve_chat(control: Arc<dyn SimControl>, chat: cc_sdk::testkit::SimChat) {
    let _ = control.queue(&chat, 1, Some(Duration::from_secs(2))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if control.agent_joins(&chat, "Sam Sim").await.is_err() {
        return;
    }
    let _ = control
        .agent_says(
            &chat,
            "Hello, I am Sam, a simulated agent: I answer what you write.",
        )
        .await;
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let Ok(got) = control.received(&chat).await else {
            return;
        };
        for r in got.iter().skip(seen) {
            let reply = match r {
                Received::Text {
                    text,
                    hidden: false,
                } => format!("You said: {text}"),
                Received::File { name, size } => format!("I got your file {name} ({size} bytes)."),
                Received::Ended => return,
                _ => continue,
            };
            let _ = control.agent_typing(&chat, true).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = control.agent_says(&chat, &reply).await;
        }
        seen = got.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(command("hello"), Command::Text("hello".into()));
        assert_eq!(command("  "), Command::Nothing);
        assert_eq!(command("//etc"), Command::Text("/etc".into()));
        assert_eq!(command("/end"), Command::End);
        assert_eq!(command("/leave"), Command::Leave);
        assert_eq!(command("/file a b.txt"), Command::File("a b.txt".into()));
        assert_eq!(command("/file"), Command::Unknown("/file".into()));
        assert_eq!(command("/typing on"), Command::Typing(true));
        assert_eq!(command("/typing off"), Command::Typing(false));
        assert_eq!(
            command("/typing maybe"),
            Command::Unknown("/typing maybe".into())
        );
        assert_eq!(command("/nope"), Command::Unknown("/nope".into()));
    }

    #[test]
    fn mime_types_by_extension() {
        assert_eq!(mime_type("a.PNG"), "image/png");
        assert_eq!(mime_type("notes.txt"), "text/plain");
        assert_eq!(mime_type("blob"), "application/octet-stream");
    }

    #[test]
    fn events_render_as_one_line() {
        let chat = cc_sdk::EngagementId::from("c1");
        let agent = Arc::new(Participant::new(Role::Agent).with_name("Alex"));
        let queued = Event::Queued {
            engagement: chat.clone(),
            position: Some(2),
            expected_wait: Some(Duration::from_secs(45)),
        };
        assert_eq!(
            render_event(&queued, &chat).unwrap(),
            "* waiting in the queue, position 2, expected wait 45 s"
        );
        let typing = Event::Typing {
            engagement: chat.clone(),
            participant: agent.clone(),
            on: true,
        };
        assert_eq!(render_event(&typing, &chat).unwrap(), "* Alex is typing");
        let other = Event::ParticipantJoined {
            engagement: cc_sdk::EngagementId::from("c2"),
            participant: agent,
        };
        assert_eq!(render_event(&other, &chat), None);
    }

    #[test]
    fn resume_settings_merge_into_the_vendor_section() {
        let config = Config::new(
            cc_sdk::Vendor::Genesys,
            serde_json::json!({"base_url": "http://127.0.0.1:1", "deployment_id": "d"}),
        )
        .unwrap();
        let merged = with_resume(&config, r#"{"session_token": "abc"}"#).unwrap();
        assert_eq!(
            merged.raw_section().unwrap(),
            &serde_json::json!({
                "base_url": "http://127.0.0.1:1",
                "deployment_id": "d",
                "session_token": "abc",
            })
        );
        assert!(with_resume(&config, "[1]").is_err());
        assert!(with_resume(&config, "{").is_err());
    }

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        assert_eq!(State::load(&path).unwrap(), None);
        let s = State {
            vendor: "genesys".into(),
            customer_id: "cc-cli-1".into(),
            engagement: Some("e".into()),
            resume: Some(r#"{"token":"t0ps3cret"}"#.into()),
        };
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), Some(s.clone()));
        assert!(!format!("{s:?}").contains("t0ps3cret"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "{").unwrap();
        let err = State::load(&path).unwrap_err().to_string();
        assert!(err.contains("delete it to start over"), "{err}");
    }
}
