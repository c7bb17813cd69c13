//! The capability guard: refuses operations outside an adapter's [`Capabilities`] with
//! [`Error::Unsupported`] (or [`Error::InvalidInput`] for a broken limit) before the adapter
//! runs. `cc_sdk::connect` wraps every session in it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    CallRequest, CallSession, Capabilities, ChatRequest, Content, Engagement, EngagementId,
    EngagementState, Error, EventStream, Feature, HistoryPager, Message, MessageId, Participant,
    Receipt, Result, Secret, SentMessage, ServiceStatus, Session, StatusQuery, Upload, Vendor,
};

/// A [`Session`] wrapped in the capability guard.
#[derive(Debug)]
pub struct Guarded {
    inner: Box<dyn Session>,
}

impl Guarded {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Session>) -> Self {
        Guarded { inner }
    }

    /// The wrapped session.
    pub fn into_inner(self) -> Box<dyn Session> {
        self.inner
    }
}

fn require(vendor: Vendor, caps: &Capabilities, feature: Feature) -> Result<()> {
    if caps.supports(feature) {
        Ok(())
    } else {
        Err(Error::unsupported(vendor, feature))
    }
}

/// Checks `content` against `caps` the way the guard does before a send.
pub fn check_content(vendor: Vendor, caps: &Capabilities, content: &Content) -> Result<()> {
    match content {
        Content::Text(t) => {
            if t.trim().is_empty() {
                return Err(Error::invalid(vendor, "content.text", "empty message"));
            }
            if let Some(max) = caps.message_max_chars {
                let n = t.chars().count();
                if n > max as usize {
                    return Err(Error::invalid(
                        vendor,
                        "content.text",
                        format!("{n} characters, more than the {max} {vendor} accepts"),
                    ));
                }
            }
            Ok(())
        }
        Content::File(_) => require(vendor, caps, Feature::Attachments),
        Content::Rich(_) => require(vendor, caps, Feature::RichContent),
        Content::Notice(_) => require(vendor, caps, Feature::CustomNotices),
    }
}

#[async_trait]
impl Session for Guarded {
    fn vendor(&self) -> Vendor {
        self.inner.vendor()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn events(&self) -> EventStream {
        self.inner.events()
    }

    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn Engagement>> {
        let (v, caps) = (self.vendor(), self.capabilities());
        require(v, &caps, Feature::Chat)?;
        if !request.bot_history.is_empty() {
            require(v, &caps, Feature::BotHistoryHandoff)?;
        }
        if let Some(first) = &request.first_message {
            check_content(v, &caps, &Content::Text(first.clone()))
                .map_err(|e| rename_field(e, "first_message"))?;
        }
        let inner = self.inner.start_chat(request).await?;
        Ok(Arc::new(GuardedEngagement { inner, caps }))
    }

    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>> {
        let caps = self.capabilities();
        let list = self.inner.engagements().await?;
        Ok(list
            .into_iter()
            .map(|inner| Arc::new(GuardedEngagement { inner, caps }) as Arc<dyn Engagement>)
            .collect())
    }

    async fn start_call(&self, request: CallRequest) -> Result<Arc<dyn CallSession>> {
        let (v, caps) = (self.vendor(), self.capabilities());
        if request.video {
            require(v, &caps, Feature::CallsVideo)?;
        }
        require(v, &caps, Feature::CallsAudio)?;
        let inner = self.inner.start_call(request).await?;
        Ok(Arc::new(GuardedCall { inner, caps }))
    }

    async fn service_status(&self, query: StatusQuery) -> Result<ServiceStatus> {
        require(self.vendor(), &self.capabilities(), Feature::ServiceStatus)?;
        self.inner.service_status(query).await
    }

    async fn set_token(&self, token: Secret) -> Result<()> {
        require(self.vendor(), &self.capabilities(), Feature::TokenRefresh)?;
        if token.expose().is_empty() {
            return Err(Error::invalid(self.vendor(), "token", "empty"));
        }
        self.inner.set_token(token).await
    }

    async fn keep_alive(&self) -> Result<()> {
        require(self.vendor(), &self.capabilities(), Feature::KeepAlive)?;
        self.inner.keep_alive().await
    }

    fn resume_settings(&self) -> Option<Secret> {
        self.inner.resume_settings()
    }

    async fn shutdown(&self) -> Result<()> {
        self.inner.shutdown().await
    }
}

fn rename_field(e: Error, field: &'static str) -> Error {
    match e {
        Error::InvalidInput { vendor, reason, .. } => Error::InvalidInput {
            vendor,
            field: field.into(),
            reason,
        },
        other => other,
    }
}

/// An [`Engagement`] wrapped in the capability guard.
#[derive(Debug)]
pub struct GuardedEngagement {
    inner: Arc<dyn Engagement>,
    caps: Capabilities,
}

impl GuardedEngagement {
    fn require(&self, feature: Feature) -> Result<()> {
        require(self.inner.vendor(), &self.caps, feature)
    }
}

#[async_trait]
impl Engagement for GuardedEngagement {
    fn vendor(&self) -> Vendor {
        self.inner.vendor()
    }

    fn id(&self) -> EngagementId {
        self.inner.id()
    }

    fn state(&self) -> EngagementState {
        self.inner.state()
    }

    fn participants(&self) -> Vec<Participant> {
        self.inner.participants()
    }

    fn events(&self) -> EventStream {
        self.inner.events()
    }

    fn transcript(&self) -> Vec<Message> {
        self.inner.transcript()
    }

    async fn send(&self, content: Content) -> Result<SentMessage> {
        check_content(self.vendor(), &self.caps, &content)?;
        self.inner.send(content).await
    }

    async fn send_hidden(&self, content: Content) -> Result<SentMessage> {
        self.require(Feature::FilteredMessages)?;
        check_content(self.vendor(), &self.caps, &content)?;
        self.inner.send_hidden(content).await
    }

    async fn typing(&self, on: bool) -> Result<()> {
        self.require(Feature::TypingOut)?;
        self.inner.typing(on).await
    }

    async fn mark(&self, message: &MessageId, receipt: Receipt) -> Result<()> {
        self.require(match receipt {
            Receipt::Delivered => Feature::DeliveryReceipts,
            Receipt::Read => Feature::ReadReceipts,
        })?;
        self.inner.mark(message, receipt).await
    }

    async fn history(&self, page_size: u32) -> Result<Box<dyn HistoryPager>> {
        self.require(Feature::History)?;
        if page_size == 0 {
            return Err(Error::invalid(
                self.vendor(),
                "page_size",
                "must be at least 1",
            ));
        }
        if let Some(max) = self.caps.history_page_max
            && page_size > max
        {
            return Err(Error::invalid(
                self.vendor(),
                "page_size",
                format!("{page_size} is more than the {max} the vendor serves"),
            ));
        }
        self.inner.history(page_size).await
    }

    async fn upload(&self, file: Upload) -> Result<SentMessage> {
        self.require(Feature::Attachments)?;
        if file.name.trim().is_empty() {
            return Err(Error::invalid(self.vendor(), "file.name", "empty"));
        }
        let len = file.bytes.len() as u64;
        if let Some(max) = self.caps.attachment_max_bytes
            && len > max
        {
            return Err(Error::invalid(
                self.vendor(),
                "file.bytes",
                format!("{len} bytes, more than the {max} the vendor accepts"),
            ));
        }
        self.inner.upload(file).await
    }

    async fn set_context(&self, context: BTreeMap<String, String>) -> Result<()> {
        self.require(Feature::SetContext)?;
        self.inner.set_context(context).await
    }

    async fn end(&self, reason: Option<String>) -> Result<()> {
        self.inner.end(reason).await
    }

    async fn leave(&self) -> Result<()> {
        self.require(Feature::Leave)?;
        self.inner.leave().await
    }
}

/// A [`CallSession`] wrapped in the capability guard.
#[derive(Debug)]
pub struct GuardedCall {
    inner: Arc<dyn CallSession>,
    caps: Capabilities,
}

#[async_trait]
impl CallSession for GuardedCall {
    fn vendor(&self) -> Vendor {
        self.inner.vendor()
    }

    fn id(&self) -> Arc<str> {
        self.inner.id()
    }

    fn state(&self) -> crate::CallState {
        self.inner.state()
    }

    fn events(&self) -> EventStream {
        self.inner.events()
    }

    async fn mute_audio(&self, on: bool) -> Result<()> {
        self.inner.mute_audio(on).await
    }

    async fn mute_video(&self, on: bool) -> Result<()> {
        require(self.vendor(), &self.caps, Feature::CallsVideo)?;
        self.inner.mute_video(on).await
    }

    async fn hold(&self, on: bool) -> Result<()> {
        require(self.vendor(), &self.caps, Feature::CallHold)?;
        self.inner.hold(on).await
    }

    async fn dtmf(&self, digits: &str) -> Result<()> {
        require(self.vendor(), &self.caps, Feature::CallDtmf)?;
        if digits.is_empty() {
            return Err(Error::invalid(self.vendor(), "digits", "empty"));
        }
        if let Some(bad) = digits
            .chars()
            .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
        {
            return Err(Error::invalid(
                self.vendor(),
                "digits",
                format!("`{bad}` is not a DTMF digit"),
            ));
        }
        self.inner.dtmf(digits).await
    }

    async fn hangup(&self) -> Result<()> {
        self.inner.hangup().await
    }

    fn stats(&self) -> Result<crate::CallStats> {
        self.inner.stats()
    }
}
