//! The trait set: [`Session`], [`Engagement`], [`CallSession`], [`HistoryPager`].
//!
//! Implementers must guarantee:
//! - every operation either does what it says or returns an error; an operation the adapter
//!   lacks returns [`Error::Unsupported`] (the default bodies here do exactly that);
//! - every event reaches [`Session::events`] subscribers, in the order the adapter saw it;
//! - a message accepted by [`Engagement::send`] is delivered to the vendor exactly once, even
//!   across reconnects, or reported with [`crate::Event::MessageFailed`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    BotTurn, CallState, CallStats, Capabilities, Content, Customer, EngagementId, Error,
    EventStream, Feature, HistoryPage, MediaDevices, Message, MessageId, Participant, Receipt,
    Result, Secret, SentMessage, ServiceStatus, StatusQuery, Upload, Vendor,
};

/// Where the vendor should route a contact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// Queue, target address or entry point; the configured one when `None`.
    pub target: Option<String>,
    /// Priority, where the vendor takes one.
    pub priority: Option<i32>,
    /// Required skills.
    pub skills: Vec<String>,
    /// Language to route by.
    pub language: Option<String>,
}

/// What [`Session::start_chat`] needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatRequest {
    /// The customer's profile.
    pub customer: Customer,
    /// The subject, shown to the agent.
    pub subject: Option<String>,
    /// Routing.
    pub routing: Routing,
    /// Context passed as user data / custom attributes.
    pub context: BTreeMap<String, String>,
    /// A first message sent once the chat starts.
    pub first_message: Option<String>,
    /// A bot conversation to hand over to the agent.
    pub bot_history: Vec<BotTurn>,
}

/// What [`Session::start_call`] needs.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    /// The customer's profile.
    pub customer: Customer,
    /// Video as well as audio.
    pub video: bool,
    /// Routing.
    pub routing: Routing,
    /// Context passed to the vendor.
    pub context: BTreeMap<String, String>,
    /// The app's microphone, camera and speakers (see [`MediaDevices`]).
    pub devices: MediaDevices,
}

/// Where an engagement is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngagementState {
    /// Being created.
    Starting,
    /// Waiting for an agent.
    Queued,
    /// An agent (or bot) is connected.
    Active,
    /// Detached with [`Engagement::leave`]; it goes on at the vendor and can be resumed.
    Detached,
    /// Ended.
    Ended,
}

/// One user's authenticated connection to one contact center.
#[async_trait]
pub trait Session: Send + Sync + fmt::Debug + 'static {
    /// The vendor.
    fn vendor(&self) -> Vendor;

    /// What this session supports, after connect.
    fn capabilities(&self) -> Capabilities;

    /// A new stream of every event of the session and its engagements.
    fn events(&self) -> EventStream;

    /// Starts a chat.
    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn Engagement>>;

    /// The ongoing engagements: those started here, and those resumed from the vendor.
    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>>;

    /// Starts an audio or video call.
    async fn start_call(&self, request: CallRequest) -> Result<Arc<dyn CallSession>> {
        let feature = if request.video {
            Feature::CallsVideo
        } else {
            Feature::CallsAudio
        };
        Err(Error::unsupported(self.vendor(), feature))
    }

    /// Asks the service status.
    async fn service_status(&self, _query: StatusQuery) -> Result<ServiceStatus> {
        Err(Error::unsupported(self.vendor(), Feature::ServiceStatus))
    }

    /// Replaces the session's token (JWT refresh).
    async fn set_token(&self, _token: Secret) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::TokenRefresh))
    }

    /// Resets the vendor's idle timers.
    async fn keep_alive(&self) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::KeepAlive))
    }

    /// What a later process needs to resume this session's ongoing engagements: settings to
    /// merge into the vendor's configuration section before connecting again (for example a
    /// session token), as the text of a JSON object, kept in a [`Secret`] because it usually
    /// holds a credential. `None` when the configuration alone resumes, or nothing can.
    fn resume_settings(&self) -> Option<Secret> {
        None
    }

    /// Closes the session: engagements are left as the vendor allows, connections closed.
    async fn shutdown(&self) -> Result<()>;
}

/// One chat.
#[async_trait]
pub trait Engagement: Send + Sync + fmt::Debug + 'static {
    /// The vendor.
    fn vendor(&self) -> Vendor;

    /// The engagement's id.
    fn id(&self) -> EngagementId;

    /// Where the engagement is.
    fn state(&self) -> EngagementState;

    /// Who takes part now (customer, agents, bots).
    fn participants(&self) -> Vec<Participant>;

    /// A new stream of this engagement's events.
    fn events(&self) -> EventStream;

    /// The transcript as this client knows it: ordered, deduplicated.
    fn transcript(&self) -> Vec<Message>;

    /// Sends content; returns once the outbox holds it (sent, or pending while disconnected).
    async fn send(&self, content: Content) -> Result<SentMessage>;

    /// Sends content the agent sees but that stays out of the visible transcript.
    async fn send_hidden(&self, _content: Content) -> Result<SentMessage> {
        Err(Error::unsupported(self.vendor(), Feature::FilteredMessages))
    }

    /// Starts or stops the customer's typing indicator.
    async fn typing(&self, _on: bool) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::TypingOut))
    }

    /// Sends a delivery or read receipt for an agent's message.
    async fn mark(&self, _message: &MessageId, receipt: Receipt) -> Result<()> {
        let feature = match receipt {
            Receipt::Delivered => Feature::DeliveryReceipts,
            Receipt::Read => Feature::ReadReceipts,
        };
        Err(Error::unsupported(self.vendor(), feature))
    }

    /// A pager over the server's history, starting at the newest page.
    async fn history(&self, _page_size: u32) -> Result<Box<dyn HistoryPager>> {
        Err(Error::unsupported(self.vendor(), Feature::History))
    }

    /// Uploads a file and sends it as a message.
    async fn upload(&self, _file: Upload) -> Result<SentMessage> {
        Err(Error::unsupported(self.vendor(), Feature::Attachments))
    }

    /// Updates the context (user data, custom attributes).
    async fn set_context(&self, _context: BTreeMap<String, String>) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::SetContext))
    }

    /// Ends the engagement.
    async fn end(&self, reason: Option<String>) -> Result<()>;

    /// Detaches without ending, so a later session can resume it.
    async fn leave(&self) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::Leave))
    }
}

/// A pager over an engagement's server history.
#[async_trait]
pub trait HistoryPager: Send + fmt::Debug {
    /// The next older page, or `None` when there is none.
    async fn previous_page(&mut self) -> Result<Option<HistoryPage>>;

    /// The next newer page, or `None` when there is none.
    async fn next_page(&mut self) -> Result<Option<HistoryPage>>;
}

/// One audio or video call.
#[async_trait]
pub trait CallSession: Send + Sync + fmt::Debug + 'static {
    /// The vendor.
    fn vendor(&self) -> Vendor;

    /// The call's id.
    fn id(&self) -> Arc<str>;

    /// The call's state.
    fn state(&self) -> CallState;

    /// A new stream of this call's events.
    fn events(&self) -> EventStream;

    /// Mutes or unmutes the microphone.
    async fn mute_audio(&self, on: bool) -> Result<()>;

    /// Mutes or unmutes the camera.
    async fn mute_video(&self, _on: bool) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::CallsVideo))
    }

    /// Puts the call on hold or takes it off.
    async fn hold(&self, _on: bool) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::CallHold))
    }

    /// Sends DTMF digits (`0-9`, `*`, `#`, `A-D`).
    async fn dtmf(&self, _digits: &str) -> Result<()> {
        Err(Error::unsupported(self.vendor(), Feature::CallDtmf))
    }

    /// Hangs up.
    async fn hangup(&self) -> Result<()>;

    /// Media figures so far: packets each way, DTMF received, the codec.
    fn stats(&self) -> Result<CallStats> {
        Err(Error::unsupported(self.vendor(), Feature::CallsAudio))
    }
}
