//! What a scenario gets: [`Harness`]. What an adapter gives the suite: [`Target`] and,
//! per trial, [`Started`].

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cc_core::guard::Guarded;
use cc_core::{
    Capabilities, ChatRequest, Customer, Engagement, Event, EventStream, Preferences, Result,
    Secret, Session, Vendor,
};

use crate::events::Events;
use crate::{BoxError, Frame, Proxy, SimChat, SimControl, SnapshotFrames};

/// A scenario step that did not go as expected. The message names the step and what was
/// seen; the runner prefixes the trial name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(String);

impl Failure {
    /// A failure with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Failure(msg.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// What a scenario returns.
pub type Outcome = std::result::Result<(), Failure>;

/// Names the step of a fallible operation: `session.start_chat(req).await.step("start chat")?`.
pub trait StepExt<T> {
    /// Turns an error into a [`Failure`] naming `step`.
    fn step(self, step: &str) -> std::result::Result<T, Failure>;
}

impl<T, E: fmt::Display> StepExt<T> for std::result::Result<T, E> {
    fn step(self, step: &str) -> std::result::Result<T, Failure> {
        self.map_err(|e| Failure::new(format!("step `{step}`: {e}")))
    }
}

/// Fails with `msg` (naming the step) unless `cond` holds.
pub fn check(cond: bool, step: &str, msg: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(Failure::new(format!("step `{step}`: {}", msg())))
    }
}

/// A boxed future that need not be `Send` (each trial has its own current-thread runtime).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Opens a new session for the same customer (see [`Started::with_reopen`]).
pub type ReopenFn = Box<dyn Fn() -> LocalBoxFuture<'static, Result<Box<dyn Session>>>>;

type StartFn =
    Arc<dyn Fn() -> LocalBoxFuture<'static, std::result::Result<Started, BoxError>> + Send + Sync>;

/// What an adapter's `start` function returns for one trial: a connected session to a
/// fresh simulator, the simulator's control, and optionally the proxy between them and a
/// way to open a new session for the same customer.
pub struct Started {
    /// The adapter's session, unguarded (the harness wraps it in [`Guarded`] and keeps the
    /// raw one for the negative trials).
    pub session: Box<dyn Session>,
    /// The simulator.
    pub sim: Arc<dyn SimControl>,
    /// The fault proxy between the client and the simulator, when the client goes through one.
    pub proxy: Option<Proxy>,
    /// Opens a new session for the same customer (an app restart).
    pub reopen: Option<ReopenFn>,
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("session", &self.session)
            .field("sim", &self.sim)
            .field("proxy", &self.proxy)
            .field("reopen", &self.reopen.is_some())
            .finish()
    }
}

impl Started {
    /// A started trial without proxy or reopen.
    pub fn new(session: Box<dyn Session>, sim: Arc<dyn SimControl>) -> Self {
        Started {
            session,
            sim,
            proxy: None,
            reopen: None,
        }
    }

    /// The client reaches the simulator through `proxy`.
    pub fn with_proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// How to open a new session for the same customer, against the same simulator (and
    /// through the same proxy): what an app does after a restart with the state it kept.
    /// The returned session is the adapter's own; the harness guards it.
    pub fn with_reopen<F, Fut>(mut self, reopen: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<Box<dyn Session>>> + 'static,
    {
        self.reopen = Some(Box::new(move || Box::pin(reopen())));
        self
    }
}

/// One adapter (and transport) under test: what [`crate::run`] needs.
#[derive(Clone)]
pub struct Target {
    pub(crate) vendor: Vendor,
    pub(crate) transport: Option<String>,
    pub(crate) capabilities: Capabilities,
    pub(crate) snapshot_dir: PathBuf,
    pub(crate) start: StartFn,
    pub(crate) chat_request: ChatRequest,
    pub(crate) step_timeout: Duration,
    pub(crate) trial_timeout: Duration,
    pub(crate) snapshot_frames: SnapshotFrames,
    pub(crate) snapshot_filter: Option<fn(&Frame) -> bool>,
    pub(crate) redactions: Vec<(&'static str, &'static str)>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("vendor", &self.vendor)
            .field("transport", &self.transport)
            .field("snapshot_dir", &self.snapshot_dir)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A target: the vendor, the capabilities the session will report (the suite plans
    /// trials from them, and a trial checks the session agrees), the adapter's snapshot
    /// folder (absolute: `concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots")`), and
    /// `start`, called once per trial inside that trial's runtime, which boots a fresh
    /// simulator on `127.0.0.1:0` (behind a [`Proxy`]) and connects a session to it.
    pub fn new<F, Fut, E>(
        vendor: Vendor,
        capabilities: Capabilities,
        snapshot_dir: impl Into<PathBuf>,
        start: F,
    ) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Started, E>> + 'static,
        E: Into<BoxError>,
    {
        let start: StartFn = Arc::new(move || {
            let fut = start();
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        Target {
            vendor,
            transport: None,
            capabilities,
            snapshot_dir: snapshot_dir.into(),
            start,
            chat_request: default_chat_request(),
            step_timeout: Duration::from_secs(5),
            trial_timeout: Duration::from_secs(60),
            snapshot_frames: SnapshotFrames::default(),
            snapshot_filter: None,
            redactions: Vec::new(),
        }
    }

    /// Names the transport, for adapters that run the suite once per transport: trials
    /// become `<vendor>-<transport>::<scenario>`, snapshots `<scenario>@<vendor>-<transport>.snap`.
    pub fn transport(mut self, name: impl Into<String>) -> Self {
        self.transport = Some(name.into());
        self
    }

    /// The chat request scenarios start chats with (default: [`default_chat_request`]).
    pub fn chat_request(mut self, request: ChatRequest) -> Self {
        self.chat_request = request;
        self
    }

    /// How long one step may wait for an event or the simulator (default 5 s).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = timeout;
        self
    }

    /// How long one whole trial may take (default 60 s).
    pub fn trial_timeout(mut self, timeout: Duration) -> Self {
        self.trial_timeout = timeout;
        self
    }

    /// Which frames snapshots keep (default client-to-server only).
    pub fn snapshot_frames(mut self, mode: SnapshotFrames) -> Self {
        self.snapshot_frames = mode;
        self
    }

    /// Keeps only the frames `keep` accepts in snapshots: drop frames whose number depends
    /// on timing (heartbeats, long-poll requests).
    pub fn snapshot_filter(mut self, keep: fn(&Frame) -> bool) -> Self {
        self.snapshot_filter = Some(keep);
        self
    }

    /// An extra insta redaction, e.g. `("[].body.token", "[token]")` (selectors run on the
    /// normalized document: an array of `{channel, body}`).
    pub fn redaction(mut self, selector: &'static str, replacement: &'static str) -> Self {
        self.redactions.push((selector, replacement));
        self
    }

    /// The trial name prefix: `<vendor>` or `<vendor>-<transport>`.
    pub fn label(&self) -> String {
        match &self.transport {
            Some(t) => format!("{}-{t}", self.vendor.key()),
            None => self.vendor.key().to_owned(),
        }
    }

    /// The capabilities the target declares.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

/// The customer and request scenarios use unless the target sets its own.
pub fn default_chat_request() -> ChatRequest {
    ChatRequest {
        customer: Customer {
            id: Some("conformance-customer".to_owned()),
            nickname: Some("Casey".to_owned()),
            first_name: Some("Casey".to_owned()),
            last_name: Some("Jones".to_owned()),
            email: Some("casey@example.com".to_owned()),
            phone: None,
            preferences: Preferences {
                language: Some("en".to_owned()),
                ..Preferences::default()
            },
            attributes: Default::default(),
        },
        subject: Some("Conformance".to_owned()),
        ..ChatRequest::default()
    }
}

/// Shares one adapter session between the guarded view and the raw one.
#[derive(Debug)]
pub(crate) struct Shared(pub(crate) Arc<dyn Session>);

#[cc_core::async_trait]
impl Session for Shared {
    fn vendor(&self) -> Vendor {
        self.0.vendor()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn events(&self) -> EventStream {
        self.0.events()
    }
    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn Engagement>> {
        self.0.start_chat(request).await
    }
    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>> {
        self.0.engagements().await
    }
    async fn start_call(
        &self,
        request: cc_core::CallRequest,
    ) -> Result<Arc<dyn cc_core::CallSession>> {
        self.0.start_call(request).await
    }
    async fn service_status(&self, query: cc_core::StatusQuery) -> Result<cc_core::ServiceStatus> {
        self.0.service_status(query).await
    }
    async fn set_token(&self, token: Secret) -> Result<()> {
        self.0.set_token(token).await
    }
    async fn keep_alive(&self) -> Result<()> {
        self.0.keep_alive().await
    }
    async fn shutdown(&self) -> Result<()> {
        self.0.shutdown().await
    }
}

/// Guards an adapter session as `cc_sdk::connect` does.
pub(crate) fn guard(session: Box<dyn Session>) -> Box<dyn Session> {
    Box::new(Guarded::new(session))
}

/// Everything a scenario works with, for one trial.
pub struct Harness {
    scenario: &'static str,
    vendor: Vendor,
    capabilities: Capabilities,
    session: Box<dyn Session>,
    raw: Arc<dyn Session>,
    sim: Arc<dyn SimControl>,
    proxy: Option<Proxy>,
    reopen: Option<ReopenFn>,
    chat_request: ChatRequest,
    timeout: Duration,
    /// Every event of the session, recorded from the start of the trial.
    pub events: Events,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("scenario", &self.scenario)
            .field("vendor", &self.vendor)
            .field("sim", &self.sim)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Builds the harness from what `start` returned. Must run inside the trial's runtime.
    pub(crate) fn new(scenario: &'static str, target: &Target, started: Started) -> Harness {
        let raw: Arc<dyn Session> = Arc::from(started.session);
        let session = guard(Box::new(Shared(raw.clone())));
        let events = Events::record("session", session.events(), target.step_timeout);
        Harness {
            scenario,
            vendor: target.vendor,
            capabilities: target.capabilities,
            session,
            raw,
            sim: started.sim,
            proxy: started.proxy,
            reopen: started.reopen,
            chat_request: target.chat_request.clone(),
            timeout: target.step_timeout,
            events,
        }
    }

    /// The scenario's name.
    pub fn scenario(&self) -> &'static str {
        self.scenario
    }

    /// The vendor under test.
    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// The capabilities the target declared.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The session, wrapped in the capability guard as apps get it from `cc_sdk::connect`.
    pub fn session(&self) -> &dyn Session {
        &*self.session
    }

    /// The adapter's own session, without the guard: negative trials check that the
    /// adapter itself refuses what it lacks.
    pub fn raw_session(&self) -> &dyn Session {
        &*self.raw
    }

    /// The simulator.
    pub fn sim(&self) -> &dyn SimControl {
        &*self.sim
    }

    /// The fault proxy, when the target put one between client and simulator.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// The chat request to start chats with.
    pub fn chat_request(&self) -> ChatRequest {
        self.chat_request.clone()
    }

    /// The timeout of one step.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Every frame the simulator recorded.
    pub fn frames(&self) -> Vec<Frame> {
        self.sim.frames()
    }

    /// Opens a new, guarded session for the same customer (an app restart), or fails
    /// naming the step when the target gave no way to.
    pub async fn reopen(&self, step: &str) -> std::result::Result<Box<dyn Session>, Failure> {
        let Some(reopen) = &self.reopen else {
            return Err(Failure::new(format!(
                "step `{step}`: the target declares `resume` but its `start` gave no \
                 `Started::with_reopen`"
            )));
        };
        let session = reopen().await.step(step)?;
        Ok(guard(session))
    }

    /// Waits for the next session event after the last matched one that `pred` accepts.
    pub async fn expect<P>(&mut self, step: &str, pred: P) -> std::result::Result<Event, Failure>
    where
        P: FnMut(&Event) -> bool,
    {
        self.events.expect(step, pred).await
    }

    /// Polls `sim.received(chat)` until `done` accepts it; fails naming the step and
    /// showing what the simulator received and the session events seen.
    pub async fn wait_received<P>(
        &mut self,
        step: &str,
        chat: &SimChat,
        mut done: P,
    ) -> std::result::Result<Vec<crate::Received>, Failure>
    where
        P: FnMut(&[crate::Received]) -> bool,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let got = self.sim.received(chat).await.step(step)?;
            if done(&got) {
                return Ok(got);
            }
            if tokio::time::Instant::now() >= deadline {
                self.events.drain();
                return Err(self.events.failure(
                    step,
                    &format!(
                        "the simulator did not receive what was expected within {:?}; it \
                         received: {got:#?}",
                        self.timeout
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `cond` until it holds; fails naming the step with `what()` and the session
    /// events seen.
    pub async fn wait_until<C, W>(&mut self, step: &str, mut cond: C, what: W) -> Outcome
    where
        C: FnMut() -> bool,
        W: FnOnce() -> String,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        while !cond() {
            if tokio::time::Instant::now() >= deadline {
                self.events.drain();
                return Err(self
                    .events
                    .failure(step, &format!("not within {:?}: {}", self.timeout, what())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}
