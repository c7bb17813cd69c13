//! A long-poll loop: call an async fetch again and again, deliver its items in order, back
//! off on errors.
//!
//! [`LongPoll::spawn`] runs the loop in a task and returns a [`LongPollHandle`] (stop, retry
//! now) and a [`PollEvents`] receiver. The loop waits for each batch to be taken off the
//! channel before fetching the next one, so items keep their order and a slow reader slows
//! the polling instead of piling up memory.
//!
//! Errors: [`Error::Auth`], [`Error::InvalidInput`], [`Error::Unsupported`] and
//! [`Error::Closed`] end the loop with [`PollEvent::GaveUp`] (a fetch closure turns a
//! terminal vendor answer, such as Avaya's 404 "Session not found", into one of these).
//! Every other error is retried after the [`BackoffPolicy`]'s delay, or after the error's
//! `Retry-After` when it has one; the policy's limits end the loop with `GaveUp`.
//!
//! ```no_run
//! # async fn demo() {
//! use cc_core::Vendor;
//! use cc_transport::{BackoffPolicy, LongPoll, LongPollConfig, PollEvent};
//!
//! let config = LongPollConfig::new(Vendor::Avaya, BackoffPolicy::avaya_event_stream(
//!     std::time::Duration::from_secs(120)));
//! let (handle, mut events) = LongPoll::spawn(config, || async { Ok(vec!["event"]) });
//! while let Some(event) = events.recv().await {
//!     if let PollEvent::Item(item) = event { println!("{item}"); }
//! }
//! # drop(handle); }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cc_core::{Error, ErrorKind, Result, Vendor};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::BackoffPolicy;

/// Configuration of a [`LongPoll`] loop.
#[derive(Clone, Debug)]
pub struct LongPollConfig {
    /// The vendor.
    pub vendor: Vendor,
    /// Delays after failed fetches.
    pub backoff: BackoffPolicy,
    /// Capacity of the events channel.
    pub event_capacity: usize,
}

impl LongPollConfig {
    /// A config with a 64-event channel.
    pub fn new(vendor: Vendor, backoff: BackoffPolicy) -> Self {
        LongPollConfig {
            vendor,
            backoff,
            event_capacity: 64,
        }
    }
}

/// What the loop reports, in order.
#[derive(Debug)]
pub enum PollEvent<T> {
    /// The first successful fetch, and the first one after failures.
    Connected,
    /// One item, in the order the fetches returned them.
    Item(T),
    /// A fetch failed; the next one starts after `retry_in`.
    Failed {
        /// The failure.
        error: Arc<Error>,
        /// The retry number (1 = first retry).
        attempt: u32,
        /// The wait.
        retry_in: Duration,
    },
    /// The loop stopped after a terminal error or when the policy ran out. The last event.
    GaveUp {
        /// The last failure.
        error: Arc<Error>,
    },
    /// [`LongPollHandle::stop`] (or dropping every handle) stopped the loop. The last event.
    Stopped,
}

/// Receives a loop's events.
#[derive(Debug)]
pub struct PollEvents<T> {
    rx: mpsc::Receiver<PollEvent<T>>,
}

impl<T> PollEvents<T> {
    /// The next event; `None` after the last one.
    pub async fn recv(&mut self) -> Option<PollEvent<T>> {
        self.rx.recv().await
    }
}

enum Command {
    Stop,
    RetryNow,
}

/// Controls a loop. Cheap to clone; dropping every handle stops the loop.
#[derive(Clone, Debug)]
pub struct LongPollHandle {
    cmd: mpsc::UnboundedSender<Command>,
}

impl LongPollHandle {
    /// Stops the loop (an in-flight fetch is dropped); [`PollEvent::Stopped`] follows.
    pub fn stop(&self) {
        let _ = self.cmd.send(Command::Stop);
    }

    /// Cuts the current back-off wait short, fetches at once and resets the back-off
    /// (Avaya's `retryConnection()`). Does nothing while a fetch is running.
    pub fn retry_now(&self) {
        let _ = self.cmd.send(Command::RetryNow);
    }

    /// Whether the loop still runs.
    pub fn is_running(&self) -> bool {
        !self.cmd.is_closed()
    }
}

/// Entry point of the long-poll loop.
#[derive(Debug)]
pub struct LongPoll;

fn is_terminal(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Auth | ErrorKind::InvalidInput | ErrorKind::Unsupported | ErrorKind::Closed
    )
}

impl LongPoll {
    /// Spawns the loop on the current tokio runtime; the first fetch starts at once.
    pub fn spawn<T, F, Fut>(config: LongPollConfig, fetch: F) -> (LongPollHandle, PollEvents<T>)
    where
        T: Send + 'static,
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<T>>> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        tokio::spawn(run(config, fetch, cmd_rx, ev_tx));
        (LongPollHandle { cmd: cmd_tx }, PollEvents { rx: ev_rx })
    }
}

async fn run<T, F, Fut>(
    config: LongPollConfig,
    mut fetch: F,
    mut cmd: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<PollEvent<T>>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
{
    let mut backoff = config.backoff.start();
    let mut connected = false;
    loop {
        let fut = fetch();
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                r = &mut fut => break Some(r),
                c = cmd.recv() => match c {
                    None | Some(Command::Stop) => break None,
                    // A fetch is already running.
                    Some(Command::RetryNow) => {}
                },
            }
        };
        let Some(result) = result else { break };
        match result {
            Ok(items) => {
                backoff.reset();
                if !connected {
                    connected = true;
                    if events.send(PollEvent::Connected).await.is_err() {
                        return;
                    }
                }
                let mut stop = false;
                for item in items {
                    tokio::select! {
                        r = events.send(PollEvent::Item(item)) => if r.is_err() { return },
                        c = cmd.recv() => if matches!(c, None | Some(Command::Stop)) {
                            stop = true;
                            break;
                        },
                    }
                }
                if stop {
                    break;
                }
            }
            Err(error) => {
                connected = false;
                let delay = if is_terminal(&error) {
                    None
                } else {
                    backoff.next_delay_with(Instant::now().into_std(), error.retry_after())
                };
                let error = Arc::new(error);
                tracing::debug!(vendor = %config.vendor, %error, ?delay, "long poll failed");
                let Some(delay) = delay else {
                    let _ = events.send(PollEvent::GaveUp { error }).await;
                    return;
                };
                let failed = PollEvent::Failed {
                    error,
                    attempt: backoff.attempt(),
                    retry_in: delay,
                };
                if events.send(failed).await.is_err() {
                    return;
                }
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                tokio::select! {
                    () = &mut sleep => {}
                    c = cmd.recv() => match c {
                        None | Some(Command::Stop) => break,
                        Some(Command::RetryNow) => backoff.reset(),
                    },
                }
            }
        }
    }
    let _ = events.send(PollEvent::Stopped).await;
}
