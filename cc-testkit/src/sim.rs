//! [`SimControl`]: what every vendor simulator implements so a test (or the CLI's agent
//! console) can play the agent side and inject faults.
//!
//! Chats are named by [`SimChat`], the id the simulator gave the chat (the vendor's
//! conversation id). Every method acts on the simulator's own state and the wire, never on
//! the client: an agent message reaches the client only through the vendor protocol.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use cc_core::{CallStats, Error, Feature, Result, Secret, Vendor};

/// A chat as the simulator knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SimChat {
    /// The vendor's id of the chat (conversation id).
    pub id: String,
    /// The customer's display name, as the client sent it.
    pub customer_name: Option<String>,
}

/// Something the simulator received from the customer side, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Received {
    /// A text message.
    Text {
        /// The text.
        text: String,
        /// Whether the client marked it hidden (filtered).
        hidden: bool,
    },
    /// A file.
    File {
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
    },
    /// A custom notice.
    Notice {
        /// Its kind.
        kind: String,
    },
    /// A typing indicator.
    Typing {
        /// Started or stopped.
        on: bool,
    },
    /// A receipt for an agent message.
    Receipt {
        /// The agent message's id.
        message_id: String,
        /// `delivered` or `read`.
        state: String,
    },
    /// The customer ended the chat.
    Ended,
}

/// Which way a recorded frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client to the simulator.
    ClientToServer,
    /// From the simulator to the client.
    ServerToClient,
}

/// One frame or request the simulator saw or sent, for snapshots.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Frame {
    /// Which way it went.
    pub direction: Direction,
    /// The channel: `ws`, or `METHOD /path` for an HTTP request or its response.
    pub channel: String,
    /// The body, as JSON when it parses, else as a string.
    pub body: serde_json::Value,
}

/// What a simulator records of the wire for [`SimControl::frames`]: the newest
/// [`FrameLog::CAPACITY`] frames. A scenario sees every frame; a simulator serving a long run
/// (`cc-cli sim`, thousands of `cc-cli load` customers) forgets the oldest instead of growing
/// without end.
#[derive(Clone, Debug, Default)]
pub struct FrameLog {
    frames: std::collections::VecDeque<Frame>,
}

impl FrameLog {
    /// How many frames are kept.
    pub const CAPACITY: usize = 20_000;

    /// Records `frame`, forgetting the oldest when full.
    pub fn push(&mut self, frame: Frame) {
        if self.frames.len() == Self::CAPACITY {
            self.frames.pop_front();
        }
        self.frames.push_back(frame);
    }

    /// The frames kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter()
    }

    /// A copy of the frames kept, oldest first.
    pub fn to_vec(&self) -> Vec<Frame> {
        self.frames.iter().cloned().collect()
    }
}

/// Drives a simulator's agent side and its faults.
///
/// Implementations must be faithful: everything they do goes to the client over the
/// vendor's wire protocol, exactly as the real server would send it.
#[async_trait]
pub trait SimControl: Send + Sync + std::fmt::Debug + 'static {
    /// The vendor this simulator imitates.
    fn vendor(&self) -> Vendor;

    /// Waits until a customer has started a chat (the newest one not yet returned), or
    /// fails with `Error::Timeout` after `timeout`.
    async fn wait_for_chat(&self, timeout: Duration) -> Result<SimChat>;

    /// Puts the chat in the queue at `position`, with an expected wait if given.
    async fn queue(
        &self,
        chat: &SimChat,
        position: u32,
        expected_wait: Option<Duration>,
    ) -> Result<()>;

    /// An agent named `agent` joins the chat.
    async fn agent_joins(&self, chat: &SimChat, agent: &str) -> Result<()>;

    /// The agent starts or stops typing.
    async fn agent_typing(&self, chat: &SimChat, on: bool) -> Result<()>;

    /// The agent writes `text`; returns the vendor's message id.
    async fn agent_says(&self, chat: &SimChat, text: &str) -> Result<String>;

    /// The agent sends a file.
    async fn agent_sends_file(
        &self,
        chat: &SimChat,
        name: &str,
        mime_type: &str,
        bytes: &[u8],
    ) -> Result<String>;

    /// The agent reads everything the customer sent so far (read receipts, where the vendor has them).
    async fn agent_reads(&self, chat: &SimChat) -> Result<()>;

    /// The agent leaves without ending the chat.
    async fn agent_leaves(&self, chat: &SimChat) -> Result<()>;

    /// The chat is transferred to another agent, who joins.
    async fn transfer(&self, chat: &SimChat, to_agent: &str) -> Result<()>;

    /// The agent ends the chat.
    async fn agent_ends(&self, chat: &SimChat) -> Result<()>;

    /// What the simulator received from the customer in this chat, in arrival order.
    async fn received(&self, chat: &SimChat) -> Result<Vec<Received>>;

    /// Warns the customer that the chat is idle and will close after `grace`.
    async fn idle_warning(&self, chat: &SimChat, grace: Duration) -> Result<()>;

    /// Drops every client connection now (the client should reconnect).
    async fn drop_connections(&self) -> Result<()>;

    /// Expires the session token now (the client should be told, and refresh where it can).
    async fn expire_token(&self) -> Result<()>;

    /// Issues a fresh session token for the customer, as the app's backend (or the vendor's
    /// token endpoint) would after an expiry; the conformance suite passes it to
    /// `Session::set_token`. Simulators of vendors with token refresh must implement it.
    async fn issue_token(&self) -> Result<Secret> {
        Err(Error::unsupported(self.vendor(), Feature::TokenRefresh))
    }

    /// Restarts the server: connections drop, chats survive (as a real service's would).
    async fn restart(&self) -> Result<()>;

    /// Sends a malformed frame to the customer of `chat`.
    async fn send_malformed(&self, chat: &SimChat) -> Result<()>;

    /// The frames recorded so far, both ways, oldest first: every one, up to the newest
    /// [`FrameLog::CAPACITY`] of a long run.
    fn frames(&self) -> Vec<Frame>;

    /// How the simulator's far end treats the next calls (answer, busy, no answer, refuse).
    /// Simulators of vendors with calls must implement it.
    async fn set_call_answer(&self, answer: CallAnswer) -> Result<()> {
        let _ = answer;
        Err(Error::unsupported(self.vendor(), Feature::CallsAudio))
    }

    /// How long the far end rings before it answers ([`CallAnswer::Answer`]); simulators
    /// ring about 200 ms by default. The call set-up benchmark sets zero.
    async fn set_ring_time(&self, ring: Duration) -> Result<()> {
        let _ = ring;
        Err(Error::unsupported(self.vendor(), Feature::CallsAudio))
    }

    /// The far end's view of the newest call, `None` before any call reached it.
    async fn far_end_call(&self) -> Result<Option<FarEndCall>> {
        Err(Error::unsupported(self.vendor(), Feature::CallsAudio))
    }

    /// Polls [`far_end_call`](Self::far_end_call) every 20 ms until `done` accepts what the
    /// far end saw, or `timeout` passes ([`FarEndWait::TimedOut`] then carries the last view).
    async fn wait_far_end(
        &self,
        timeout: Duration,
        done: &(dyn for<'f> Fn(&'f FarEndCall) -> bool + Send + Sync),
    ) -> Result<FarEndWait> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.far_end_call().await?;
            if let Some(far) = &seen
                && done(far)
            {
                return Ok(FarEndWait::Done(far.clone()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(FarEndWait::TimedOut(seen));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How [`SimControl::wait_far_end`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FarEndWait {
    /// The far end's view that was accepted.
    Done(FarEndCall),
    /// Not within the timeout: the last view seen, `None` if no call reached the far end.
    TimedOut(Option<FarEndCall>),
}

/// How a simulator's far end treats a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallAnswer {
    /// Ring, then answer with a media peer that plays a tone and counts what it receives.
    #[default]
    Answer,
    /// Reject the call as busy (SIP 486, or the vendor's busy signal).
    Busy,
    /// Ring, then give up after about a second, as a switch's no-answer timer does.
    NoAnswer,
    /// Refuse calls before any ringing: registration refused, or calls disabled.
    Refuse,
}

/// What a simulator's far end saw of a call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FarEndCall {
    /// The far end answered.
    pub answered: bool,
    /// The client holds the call (its last offer was `sendonly` or `inactive`).
    pub held: bool,
    /// The call ended.
    pub ended: bool,
    /// Video was negotiated.
    pub video: bool,
    /// The far end's media peer's own counts: what it sent, what it received from the client,
    /// and the DTMF digits it received.
    pub stats: CallStats,
}

/// A simulator that is running, with a configuration that points a client at it.
#[derive(Debug)]
pub struct RunningSim {
    /// The simulator's agent side and faults.
    pub control: std::sync::Arc<dyn SimControl>,
    /// A configuration for `cc_sdk::connect` that talks to this simulator.
    pub config: cc_core::Config,
    /// The address the simulator listens on (127.0.0.1).
    pub addr: std::net::SocketAddr,
    /// The transport the simulator serves, as the adapter names it.
    pub transport: &'static str,
}

/// A free port on 127.0.0.1 for [`SimStart::port`], for a simulator that should listen
/// there itself. On port 0 a simulator may sit behind its fault-injection proxy (Avaya's
/// does), which adds two hops to every round trip and two descriptors to every connection:
/// benchmarks and load runs, which inject no faults, want neither.
pub fn own_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How to start a simulator from [`SimEntry::start`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStart {
    /// The transport; the adapter's default when `None`.
    pub transport: Option<String>,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

/// The future [`SimEntry::start`] returns.
pub type StartSimFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunningSim>> + Send>>;

/// What an adapter crate exports (behind its `sim` feature) so tools such as `cc-cli demo`
/// and `cc-cli sim` can start its simulator without knowing the vendor.
#[derive(Clone, Copy)]
pub struct SimEntry {
    /// The vendor.
    pub vendor: Vendor,
    /// The transports the simulator serves, the default first.
    pub transports: &'static [&'static str],
    /// Starts the simulator on 127.0.0.1 and returns it with a client configuration.
    pub start: fn(SimStart) -> StartSimFuture,
}

impl std::fmt::Debug for SimEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimEntry")
            .field("vendor", &self.vendor)
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

/// Waits until `poll` yields a value, re-checking each time `notify` fires, or fails with
/// `Error::Timeout` after `timeout`: the loop behind [`SimControl::wait_for_chat`].
///
/// The `Notified` future is created before each check, so a notification that lands between
/// the check and the wait is not missed.
pub async fn wait_notified<T>(
    vendor: Vendor,
    notify: &tokio::sync::Notify,
    timeout: Duration,
    operation: &'static str,
    mut poll: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = notify.notified();
        if let Some(v) = poll() {
            return Ok(v);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(cc_core::Error::Timeout {
                vendor,
                operation,
                after: timeout,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_log_forgets_the_oldest_frames() {
        let frame = |n: usize| Frame {
            direction: Direction::ClientToServer,
            channel: "ws".into(),
            body: serde_json::json!(n),
        };
        let mut log = FrameLog::default();
        for n in 0..FrameLog::CAPACITY + 3 {
            log.push(frame(n));
        }
        let kept = log.to_vec();
        assert_eq!(kept.len(), FrameLog::CAPACITY);
        assert_eq!(kept[0], frame(3));
        assert_eq!(log.iter().last(), Some(&frame(FrameLog::CAPACITY + 2)));
    }
}
