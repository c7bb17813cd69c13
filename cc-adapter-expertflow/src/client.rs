//! [`ExpertflowSession`] and [`ExpertflowEngagement`]: the async driver around the
//! [`Engine`](crate::engine), the Socket.IO client of `cc-transport`, the REST services and
//! the `cc-chat` outbox.
//!
//! One task per session reads the socket's events and runs the engine; the same task writes
//! every chat message (the outbox is the only queue for them), so a message is written at
//! most once per connection and, after a reconnect, settled against the history the server
//! returns to `CHAT_RESUMED` before anything is resent.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cc_chat::{OutboxConfig, PageRequest, Pager, PagingMode, Poll, SendErrorOutcome, sent_message};
use cc_core::{
    Availability, CallRequest, CallSession, Capabilities, ChatRequest, Content, Engagement,
    EngagementId, EngagementState, Error, Event, EventBus, EventStream, Feature, HistoryPager,
    Initiator, Message, MessageId, OpeningHours, OpeningWindow, Participant, Receipt, Result, Role,
    SentMessage, ServiceStatus, Session, StatusQuery, Timestamp, TlsSettings, Upload, Vendor,
    Weekday,
};
use cc_transport::socketio::{PendingAck, SioClient, SioConfig, SioEvent, SioHandle};
use cc_transport::{BackoffPolicy, HttpClient, HttpConfig, Jitter, Method, Multipart, TlsConfig};
use futures::FutureExt;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};

use crate::calls::{CallSetup, ExpertflowCall};
use crate::engine::{Engine, Output, message_of};
use crate::error;
use crate::wire::call::CallerInfo;
use crate::wire::{
    Body, BrowserDeviceInfo, CalendarEvent, CallbackRequest, ChatRequested, CimMessage,
    CustomerData, FormAttribute, FormData, Locale, MessageAck, ResumeRequest, UploadResponse,
    WidgetConfig, event,
};
use crate::{CAPABILITIES, ExpertflowConfig, Urls};

const V: Vendor = Vendor::Expertflow;

/// Least time between two `TYPING_STARTED` frames (the widget's cadence).
const TYPING_COOLDOWN: Duration = Duration::from_millis(3000);

/// What the socket's acknowledgement callbacks hand the driver, through
/// [`State::cmds`] (a queue that holds no memory while empty, where a channel would keep a
/// preallocated block per session).
enum Cmd {
    Acked {
        client_id: cc_core::ClientMessageId,
        result: Result<Vec<Value>>,
    },
    Resumed {
        result: Result<Vec<Value>>,
    },
}

struct State {
    engine: Engine,
    start: Option<oneshot::Sender<Result<EngagementId>>>,
    first_connect: Option<oneshot::Sender<Result<()>>>,
    resuming: bool,
    closed: bool,
    wake_at: Option<Instant>,
    /// When `TYPING_STARTED` was last sent (the widget sends it at most every 3 s).
    typing_sent: Option<Instant>,
    /// The newest call (at most one at a time).
    call: Option<ExpertflowCall>,
    /// A call is being set up (registration under way).
    call_starting: bool,
    /// Results for the session task, in arrival order; it is woken by [`Inner::kick`].
    cmds: VecDeque<Cmd>,
}

struct Inner {
    config: ExpertflowConfig,
    /// The service URLs, derived from `config` (checked at connect) when first needed: an
    /// idle session keeps none of them.
    urls: OnceLock<Box<Urls>>,
    /// TLS settings, for the switch's WebSocket too.
    tls: TlsConfig,
    http: HttpClient,
    io: SioHandle,
    bus: EventBus,
    state: Mutex<State>,
    /// Wakes the session task: [`State::cmds`] or the outbox may have something.
    kick: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.kick.notify_one();
    }
}

/// A session with the Expertflow CX web channel: one customer identity, one socket, at most
/// one chat at a time. Cheap to clone.
#[derive(Clone)]
pub struct ExpertflowSession {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ExpertflowSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpertflowSession")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The one chat of an [`ExpertflowSession`].
#[derive(Clone)]
pub struct ExpertflowEngagement {
    inner: Arc<Inner>,
    id: EngagementId,
}

impl std::fmt::Debug for ExpertflowEngagement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpertflowEngagement")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn customer_data(config: &ExpertflowConfig, request: Option<&ChatRequest>) -> CustomerData {
    let mut attributes = Vec::new();
    let mut language = "en".to_owned();
    if let Some(r) = request {
        let c = &r.customer;
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                attributes.push(FormAttribute {
                    key: k.to_owned(),
                    value: v.clone(),
                    kind: "string".to_owned(),
                });
            }
        };
        add("firstName", &c.first_name);
        add("lastName", &c.last_name);
        add("email", &c.email);
        add("phone", &c.phone);
        add("subject", &r.subject);
        for (k, v) in c.attributes.iter().chain(r.context.iter()) {
            attributes.push(FormAttribute {
                key: k.clone(),
                value: v.clone(),
                kind: "string".to_owned(),
            });
        }
        if let Some(l) = &c.preferences.language {
            language.clone_from(l);
        }
    }
    let now = Timestamp::now().unix_ms();
    CustomerData {
        service_identifier: config.service_identifier.clone(),
        channel_customer_identifier: config.channel_customer_identifier.clone(),
        browser_device_info: BrowserDeviceInfo {
            browser_id: config.channel_customer_identifier.clone(),
            browser_id_expiry_time: "9999".to_owned(),
            browser_name: config.browser_name.clone(),
            device_type: config.device_type.clone(),
        },
        queue: request
            .and_then(|r| r.routing.target.clone())
            .unwrap_or_else(|| config.queue.clone()),
        locale: Locale {
            timezone: config.timezone.clone().unwrap_or_else(|| "UTC".to_owned()),
            language,
            country: config.country.clone().unwrap_or_default(),
        },
        form_data: FormData {
            id: format!("form-data-{}", config.channel_customer_identifier),
            form_id: config.form_id.clone().unwrap_or_default(),
            filled_by: "web-widget".to_owned(),
            attributes,
            entities: Value::Object(Map::new()),
            created_on: Value::from(now),
        },
    }
}

impl ExpertflowSession {
    /// Connects: validates the configuration, opens the socket (auth
    /// `{serviceIdentifier, channelCustomerIdentifier}`), waits for the first connect and
    /// asks `CHAT_RESUMED`, so a live chat of this customer is among
    /// [`Session::engagements`] when this returns.
    pub async fn connect(config: ExpertflowConfig, tls: &TlsSettings) -> Result<Self> {
        config.validate()?;
        let urls = config.urls()?;
        let tls = TlsConfig::from_settings(V, tls)?;
        let mut origin = urls.socket.clone();
        origin.set_path("/");
        origin.set_query(None);
        let http = HttpClient::new(
            HttpConfig::new(V, origin)
                .with_tls(tls.clone())
                .with_timeout(config.timeout())
                .with_error_mapper(error::map_http),
        )?;
        let mut sio = SioConfig::new(V, urls.socket.clone()).with_auth(json!({
            "serviceIdentifier": config.service_identifier,
            "channelCustomerIdentifier": config.channel_customer_identifier,
        }));
        sio.tls = tls.clone();
        sio.backoff = BackoffPolicy::exponential(
            Duration::from_millis(config.reconnect_initial_ms),
            Duration::from_millis(config.reconnect_max_ms),
        )
        .with_jitter(Jitter::Proportional(0.5));
        sio.ack_timeout = config.timeout();
        sio.connect_timeout = config.timeout();
        sio.handshake_timeout = config.timeout();
        let (io, events) = SioClient::connect(sio)?;
        let me =
            Participant::new(Role::Customer).with_id(config.channel_customer_identifier.as_str());
        let outbox = OutboxConfig {
            ack_timeout: Some(config.timeout()),
            // One message at a time: the next is written once the server acked the one
            // before. Arriving in order on the socket does not mean being handled in order:
            // a server may run each event's handler as its own task (socketioxide does), so
            // two messages written back to back could be stored the other way round.
            max_in_flight: Some(1),
            ..OutboxConfig::default()
        };
        let engine = Engine::new(customer_data(&config, None), me, outbox);
        let (first_tx, first_rx) = oneshot::channel();
        let inner = Arc::new(Inner {
            config: config.clone(),
            urls: OnceLock::new(),
            tls,
            http,
            io,
            bus: EventBus::default(),
            state: Mutex::new(State {
                engine,
                start: None,
                first_connect: Some(first_tx),
                resuming: false,
                closed: false,
                wake_at: None,
                typing_sent: None,
                call: None,
                call_starting: false,
                cmds: VecDeque::new(),
            }),
            kick: Arc::new(Notify::new()),
        });
        tokio::spawn(drive(
            Arc::downgrade(&inner),
            events,
            Arc::clone(&inner.kick),
        ));
        let first = tokio::time::timeout(config.timeout(), first_rx).await;
        match first {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                inner.io.close().await;
                return Err(e);
            }
            Ok(Err(_)) => return Err(Error::closed(V, "session")),
            Err(_) => {
                inner.io.close().await;
                return Err(Error::Timeout {
                    vendor: V,
                    operation: "connect",
                    after: config.timeout(),
                });
            }
        }
        Ok(ExpertflowSession { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &ExpertflowConfig {
        &self.inner.config
    }

    /// The service URLs in use.
    pub fn urls(&self) -> &Urls {
        self.inner.urls()
    }

    fn engagement(&self, id: EngagementId) -> ExpertflowEngagement {
        ExpertflowEngagement {
            inner: Arc::clone(&self.inner),
            id,
        }
    }

    /// `widgetConfigs`: `GET {CCM}/widget-configs/{widgetIdentifier}`.
    pub async fn widget_configs(&self) -> Result<WidgetConfig> {
        let url = join(
            &self.inner.urls().ccm,
            &format!("widget-configs/{}", self.inner.config.widget_identifier),
        );
        self.inner.http.get_json(&url).await
    }

    /// `getPreChatForm`: `GET {FORM}/forms/{formId}`.
    pub async fn pre_chat_form(&self, form_id: &str) -> Result<Value> {
        if form_id.is_empty() {
            return Err(Error::invalid(V, "form_id", "empty"));
        }
        self.inner
            .http
            .get_json(&join(&self.inner.urls().form, &format!("forms/{form_id}")))
            .await
    }

    /// `formValidation`: `GET {FORM}/formValidation` (`[{type, regex}]` keyed by value type).
    pub async fn form_validations(&self) -> Result<Value> {
        self.inner
            .http
            .get_json(&join(&self.inner.urls().form, "formValidation"))
            .await
    }

    /// Fetches the form and its validations and checks `answers` against them; see
    /// [`validate_form`].
    pub async fn check_pre_chat_form(
        &self,
        form_id: &str,
        answers: &BTreeMap<String, String>,
    ) -> Result<()> {
        let form = self.pre_chat_form(form_id).await?;
        let rules = self.form_validations().await?;
        validate_form(&form, &rules, answers)
    }

    /// `setConversationData`: `POST {CONV}/{conversationId}/conversation-data`.
    pub async fn set_conversation_data(
        &self,
        conversation_id: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<()> {
        let url = join(
            &self.inner.urls().conversation,
            &format!("{conversation_id}/conversation-data"),
        );
        self.inner
            .http
            .request(Method::POST, &url)
            .json(data)
            .send()
            .await
            .map(|_| ())
    }

    /// `getConversationData`: `GET {CONV}/{conversationId}/conversation-data`.
    pub async fn conversation_data(&self, conversation_id: &str) -> Result<Value> {
        let url = join(
            &self.inner.urls().conversation,
            &format!("{conversation_id}/conversation-data"),
        );
        self.inner.http.get_json(&url).await
    }

    /// `setConversationDataByCustomerIdentifier`:
    /// `POST {CONV}/{channelCustomerIdentifier}/conversation-data-by-identifier`.
    pub async fn set_customer_data(&self, data: &BTreeMap<String, String>) -> Result<Value> {
        let url = join(
            &self.inner.urls().conversation,
            &format!(
                "{}/conversation-data-by-identifier",
                self.inner.config.channel_customer_identifier
            ),
        );
        let r = self
            .inner
            .http
            .request(Method::POST, &url)
            .json(data)
            .send()
            .await?;
        Ok(serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    }

    /// `getConversationDataByCustomerIdentifier`: `GET {CONV}/get/{channelCustomerIdentifier}`.
    pub async fn customer_data(&self) -> Result<Value> {
        let url = join(
            &self.inner.urls().conversation,
            &format!("get/{}", self.inner.config.channel_customer_identifier),
        );
        self.inner.http.get_json(&url).await
    }

    /// The transcript of a conversation:
    /// `GET {CCM}/message?customerChannelIdentifier=null&serviceIdentifier=null&conversationId=…`;
    /// edits (`intent UPDATE`) replace the message they edit.
    pub async fn conversation_transcript(&self, conversation_id: &str) -> Result<Vec<Message>> {
        self.inner.transcript(conversation_id).await
    }

    /// `uploadToFileEngine`: multipart `file` + `conversationId` (a random five-digit
    /// number, as the widget sends) to `POST {FILE}/api/uploadFileStream`.
    pub async fn upload_file(&self, file: &Upload) -> Result<UploadResponse> {
        self.inner.upload(file).await
    }

    /// The download URL of a stored file name (what goes into `attachment.mediaUrl`).
    pub fn download_url(&self, stored_name: &str) -> String {
        self.inner.download_url(stored_name)
    }

    /// Downloads a file by its stored name: `GET {FILE}/api/downloadFileStream?filename=`.
    pub async fn download(&self, stored_name: &str) -> Result<Vec<u8>> {
        let r = self
            .inner
            .http
            .request(
                Method::GET,
                &join(&self.inner.urls().file, "api/downloadFileStream"),
            )
            .query(&[("filename", stored_name)])
            .send()
            .await?;
        Ok(r.body.to_vec())
    }

    /// `callbackRequest`: posts `{campaignId, phone1, businessParam1..4, duplicateCallbacks}`
    /// to the widget config's `callback.callbackUrl`. Fails with `Unsupported(Callbacks)`
    /// when the widget config has no enabled callback.
    pub async fn request_callback(&self, phone: &str, params: [&str; 4]) -> Result<Value> {
        if phone.trim().is_empty() {
            return Err(Error::invalid(V, "phone", "empty"));
        }
        let cfg = self.widget_configs().await?;
        let cb = cfg.callback.unwrap_or(Value::Null);
        let enabled = cb
            .get("enableCallback")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(url) = cb
            .get("callbackUrl")
            .and_then(Value::as_str)
            .filter(|_| enabled)
        else {
            return Err(Error::unsupported(V, Feature::Callbacks));
        };
        let body = CallbackRequest {
            campaign_id: cb
                .get("campaignId")
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default(),
            phone1: phone.to_owned(),
            business_param1: params[0].to_owned(),
            business_param2: params[1].to_owned(),
            business_param3: params[2].to_owned(),
            business_param4: params[3].to_owned(),
            duplicate_callbacks: cb
                .get("allowDuplicate")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        let r = self
            .inner
            .http
            .request(Method::POST, url)
            .json(&body)
            .send()
            .await?;
        Ok(serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    }

    /// `pushFormDataAsActivity` (widget 5.x): posts the pre-chat form answers of the live
    /// chat to `{CX_ACTIVITY}` as a CIM message (`body.type FORM_DATA`, `header.intent
    /// WIDGET_FORM_ACTIVITY`, sender `APP` / `WIDGET_PRECHAT_FORM`).
    pub async fn push_form_activity(
        &self,
        form_id: &str,
        answers: &BTreeMap<String, String>,
    ) -> Result<Value> {
        let conversation = {
            let st = self.inner.lock();
            st.engine
                .chat
                .as_ref()
                .filter(|c| c.state != EngagementState::Ended)
                .map(|c| c.id.to_string())
                .ok_or_else(|| Error::closed(V, "chat"))?
        };
        let attributes: Vec<Value> = answers
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v, "type": "string"}))
            .collect();
        let body = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "header": {
                "sender": {"id": self.inner.config.channel_customer_identifier, "type": "APP",
                           "senderName": "WIDGET_PRECHAT_FORM", "additionalDetail": {}},
                "channelData": {
                    "channelCustomerIdentifier": self.inner.config.channel_customer_identifier,
                    "serviceIdentifier": self.inner.config.service_identifier,
                    "requestPriority": 0,
                    "additionalAttributes": []
                },
                "conversationId": conversation,
                "intent": "WIDGET_FORM_ACTIVITY",
                "timestamp": Timestamp::now().unix_ms(),
                "language": {}, "securityInfo": {}, "stamps": [], "entities": {}
            },
            "body": {
                "type": "FORM_DATA",
                "formId": form_id,
                "sections": [{"attributes": attributes}],
                "additionalDetails": {"status": "filled"}
            }
        });
        let r = self
            .inner
            .http
            .request(Method::POST, self.inner.urls().activity.as_str())
            .json(&body)
            .send()
            .await?;
        Ok(serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    }

    /// Sends a filled form (`FORM_DATA`) in the live chat, as the widget does for bot forms.
    pub async fn send_form_data(&self, form: Value) -> Result<()> {
        let body: Body = serde_json::from_value(json!({
            "type": "FORM_DATA",
            "formId": form.get("formId").cloned().unwrap_or(Value::Null),
            "formTitle": form.get("formTitle").cloned().unwrap_or(Value::Null),
            "sections": form.get("sections").cloned().unwrap_or(json!([])),
            "additionalDetails": form.get("additionalDetails").cloned().unwrap_or(json!({"status": "filled"})),
        }))
        .map_err(|e| Error::invalid(V, "form", e.to_string()))?;
        self.inner.emit_envelope("FORM_DATA", body, true).await
    }
}

/// Checks pre-chat form answers: every `isRequired` attribute answered, and each answer
/// matching the regex of its `valueType` in `validations` (`[{type, regex}]`). The error
/// names the field.
pub fn validate_form(
    form: &Value,
    validations: &Value,
    answers: &BTreeMap<String, String>,
) -> Result<()> {
    let rules: Vec<(String, String)> = validations
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r.get("type")?.as_str()?.to_owned(),
                r.get("regex")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let attributes = form
        .get("sections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("attributes").and_then(Value::as_array))
        .flatten();
    for a in attributes {
        let Some(key) = a.get("key").and_then(Value::as_str) else {
            continue;
        };
        let required = a
            .get("isRequired")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let answer = answers.get(key).map(|s| s.trim()).unwrap_or("");
        if answer.is_empty() {
            if required {
                return Err(Error::invalid(V, format!("form.{key}"), "required"));
            }
            continue;
        }
        let vt = a.get("valueType").and_then(Value::as_str).unwrap_or("");
        if let Some((_, pattern)) = rules.iter().find(|(t, _)| t == vt) {
            let re = regex::Regex::new(pattern).map_err(|e| {
                Error::protocol(V, "formValidation", format!("bad regex for {vt}: {e}"))
            })?;
            if !re.is_match(answer) {
                return Err(Error::invalid(
                    V,
                    format!("form.{key}"),
                    format!("not a valid {vt}"),
                ));
            }
        }
    }
    Ok(())
}

fn join(base: &url::Url, rest: &str) -> String {
    format!("{}/{}", base.as_str().trim_end_matches('/'), rest)
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn urls(&self) -> &Urls {
        self.urls.get_or_init(|| {
            Box::new(
                self.config
                    .urls()
                    .expect("the URLs were checked when the session connected"),
            )
        })
    }

    /// Hands a result to the reading task.
    fn queue(&self, cmd: Cmd) {
        self.lock().cmds.push_back(cmd);
        self.kick.notify_one();
    }

    fn download_url(&self, stored_name: &str) -> String {
        let mut u = url::Url::parse(&join(&self.urls().file, "api/downloadFileStream"))
            .expect("the file engine URL was validated");
        u.query_pairs_mut().append_pair("filename", stored_name);
        u.to_string()
    }

    async fn upload(&self, file: &Upload) -> Result<UploadResponse> {
        if file.name.trim().is_empty() {
            return Err(Error::invalid(V, "file.name", "empty"));
        }
        let number = fastrand::u32(10_000..100_000);
        let form = Multipart::new()
            .file(
                "file",
                file.name.clone(),
                file.mime_type.clone(),
                file.bytes.to_vec(),
            )
            .text("conversationId", number.to_string());
        self.http
            .upload(&join(&self.urls().file, "api/uploadFileStream"), form)
            .await
    }

    async fn transcript(&self, conversation_id: &str) -> Result<Vec<Message>> {
        let r = self
            .http
            .request(Method::GET, &join(&self.urls().ccm, "message"))
            .query(&[
                ("customerChannelIdentifier", "null"),
                ("serviceIdentifier", "null"),
                ("conversationId", conversation_id),
            ])
            .send()
            .await?;
        let items: Vec<Value> = r.json()?;
        let eng = EngagementId::from(conversation_id);
        let mut out: Vec<Message> = Vec::new();
        for item in items {
            let cim: CimMessage = serde_json::from_value(item)
                .map_err(|e| Error::protocol(V, "transcript message", e.to_string()))?;
            if cim.header.intent.as_deref() == Some("UPDATE")
                && let Some(orig) = &cim.header.original_message_id
                && let Some(m) = message_of(&cim, &eng)
                && let Some(target) = out
                    .iter_mut()
                    .find(|x| x.id.as_ref().map(MessageId::as_str) == Some(orig.as_str()))
            {
                target.content = m.content;
                continue;
            }
            if let Some(m) = message_of(&cim, &eng) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Emits a control envelope (typing, receipts, forms) with its ack.
    async fn emit_envelope(&self, kind: &str, body: Body, with_sender: bool) -> Result<()> {
        let envelope = {
            let st = self.lock();
            if st.closed {
                return Err(Error::closed(V, "session"));
            }
            st.engine.envelope(kind, body, with_sender)
        };
        let payload = serde_json::to_value(&envelope)
            .map_err(|e| Error::invalid(V, "message", e.to_string()))?;
        let ack = self
            .io
            .emit_with_ack(event::MESSAGE_RECEIVED, &[payload])
            .await?;
        let args = ack.wait().await?;
        check_ack(&args)
    }

    fn emit_event(&self, e: Event) {
        self.bus.emit(e);
    }

    fn apply(&self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Event(e) => self.emit_event(e),
                Output::Token(t) => self.http.set_bearer(Some(t)),
                Output::Started(id) => {
                    if let Some(tx) = self.lock().start.take() {
                        let _ = tx.send(Ok(id));
                    }
                }
                Output::StartFailed(e) => {
                    let waiter = self.lock().start.take();
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(Err(e));
                        }
                        None => self.emit_event(Event::error(e)),
                    }
                }
                Output::SendChatEnded => {
                    let customer = self.lock().engine.customer.clone();
                    if let Ok(v) = serde_json::to_value(&customer) {
                        let _ = self.io.emit_queued(event::CHAT_ENDED, &[v]);
                    }
                }
            }
        }
    }

    fn ask_resume(self: &Arc<Self>) {
        {
            let mut st = self.lock();
            if st.resuming || st.closed {
                return;
            }
            st.resuming = true;
        }
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            let req = ResumeRequest {
                service_identifier: inner.config.service_identifier.clone(),
                channel_customer_identifier: inner.config.channel_customer_identifier.clone(),
            };
            let payload = serde_json::to_value(&req).unwrap_or(Value::Null);
            let result = match inner
                .io
                .emit_with_ack(event::CHAT_RESUMED, &[payload])
                .await
            {
                Ok(ack) => ack.wait().await,
                Err(e) => Err(e),
            };
            inner.queue(Cmd::Resumed { result });
        });
    }

    /// Writes what the outbox hands out, until it has nothing more for now.
    async fn pump(self: &Arc<Self>) {
        loop {
            let now = Instant::now();
            let step = {
                let mut st = self.lock();
                st.wake_at = None;
                if st.resuming {
                    // The history of the CHAT_RESUMED in flight settles uncertain messages
                    // first; the writer is kicked again when it arrives.
                    return;
                }
                let State { engine, .. } = &mut *st;
                let Some(chat) = engine
                    .chat
                    .as_mut()
                    .filter(|c| c.state != EngagementState::Ended)
                else {
                    return;
                };
                match chat.outbox.poll(now) {
                    Poll::Send(out) => {
                        let env = engine.message_envelope(&out.message.content);
                        Some((out.client_id(), env))
                    }
                    Poll::WaitUntil(t) => {
                        st.wake_at = Some(t);
                        None
                    }
                    Poll::Reconcile => {
                        drop(st);
                        self.ask_resume();
                        None
                    }
                    Poll::Idle => None,
                }
            };
            let Some((client_id, env)) = step else {
                return;
            };
            let result = match env {
                Ok(env) => match serde_json::to_value(&env) {
                    Ok(v) => self.io.emit_with_ack(event::MESSAGE_RECEIVED, &[v]).await,
                    Err(e) => Err(Error::invalid(V, "message", e.to_string())),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(ack) => {
                    if let Some(c) = self.lock().engine.chat.as_mut() {
                        c.outbox.on_written(client_id, Instant::now());
                    }
                    self.wait_ack(client_id, ack);
                }
                Err(e) => {
                    let outcome = match self.lock().engine.chat.as_mut() {
                        Some(c) => c.outbox.on_send_error(client_id, e, Instant::now()),
                        None => SendErrorOutcome::Unknown,
                    };
                    if let SendErrorOutcome::Failed(f) = outcome {
                        self.fail_message(&f);
                    }
                }
            }
        }
    }

    fn fail_message(&self, f: &cc_chat::Failure) {
        if let Some(c) = self.lock().engine.chat.as_mut() {
            c.transcript
                .set_state(None, Some(f.client_id()), f.message.state.clone());
        }
        self.emit_event(f.event());
    }

    fn wait_ack(self: &Arc<Self>, client_id: cc_core::ClientMessageId, ack: PendingAck) {
        let inner = Arc::downgrade(self);
        tokio::spawn(async move {
            let result = ack.wait().await;
            if let Some(inner) = inner.upgrade() {
                inner.queue(Cmd::Acked { client_id, result });
            }
        });
    }

    fn on_acked(&self, client_id: cc_core::ClientMessageId, result: Result<Vec<Value>>) {
        let Ok(args) = result else {
            // Transport failures and timeouts leave the message uncertain: the outbox
            // settles it against the history after the reconnect.
            return;
        };
        let ack: MessageAck = match args.first().cloned().map(serde_json::from_value) {
            Some(Ok(a)) => a,
            _ => {
                self.emit_event(Event::error(Error::protocol(
                    V,
                    "MESSAGE_RECEIVED ack",
                    "expected {code}",
                )));
                return;
            }
        };
        if error::ack_ok(&ack.code) {
            let confirmed = {
                let mut st = self.lock();
                let Some(chat) = st.engine.chat.as_mut() else {
                    return;
                };
                let m = chat.outbox.on_acked(client_id, None, None, Instant::now());
                if let Some(m) = &m {
                    chat.transcript.upsert(m.clone());
                }
                m
            };
            if let Some(m) = confirmed {
                self.emit_event(Event::MessageSent(Arc::new(m)));
            }
        } else {
            let outcome = match self.lock().engine.chat.as_mut() {
                Some(c) => c.outbox.on_send_error(
                    client_id,
                    error::message_refused(&ack.code),
                    Instant::now(),
                ),
                None => SendErrorOutcome::Unknown,
            };
            if let SendErrorOutcome::Failed(f) = outcome {
                self.fail_message(&f);
            }
        }
    }
}

fn check_ack(args: &[Value]) -> Result<()> {
    let ack: MessageAck = args
        .first()
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| Error::protocol(V, "MESSAGE_RECEIVED ack", "expected {code}"))?;
    if error::ack_ok(&ack.code) {
        Ok(())
    } else {
        Err(error::message_refused(&ack.code))
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        // Boxed: a timer is set only while messages are on their way.
        Some(t) => Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(t))).await,
        None => std::future::pending().await,
    }
}

/// A write in progress (boxed: the writes' futures exist only while there is something to
/// write, not in every idle session's task).
type Writing = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The session's task: socket events and command results in, engine; and writes what the
/// outbox hands out, when kicked or when its timer (pacing, back-off, ack deadline) is due.
/// A write in progress is polled alongside the reading, never in its way, so a busy socket
/// cannot stall the reading.
async fn drive(
    inner: std::sync::Weak<Inner>,
    mut events: cc_transport::socketio::SioEvents,
    kick: Arc<Notify>,
) {
    let mut writing: Option<Writing> = None;
    let mut kicked = false;
    loop {
        let mut wake = None;
        if writing.is_none() {
            let Some(i) = inner.upgrade() else { return };
            let (closed, wake_at) = {
                let st = i.lock();
                (st.closed, st.wake_at)
            };
            if closed {
                kicked = false;
            } else if kicked {
                kicked = false;
                writing = Some(Box::pin(async move { i.pump().await }));
            } else {
                wake = wake_at;
            }
        }
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                let Some(inner) = inner.upgrade() else { return };
                if on_sio(&inner, ev) {
                    return;
                }
                kicked = true;
            }
            () = kick.notified() => {
                let Some(inner) = inner.upgrade() else { return };
                // Taken whole, so an idle session keeps no queue storage.
                let cmds = std::mem::take(&mut inner.lock().cmds);
                for cmd in cmds {
                    match cmd {
                        Cmd::Acked { client_id, result } => inner.on_acked(client_id, result),
                        Cmd::Resumed { result } => on_resumed(&inner, result),
                    }
                }
                kicked = true;
            }
            () = sleep_until(wake), if wake.is_some() => kicked = true,
            () = async {
                match writing.as_mut() {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            }, if writing.is_some() => writing = None,
        }
    }
}

fn on_resumed(inner: &Arc<Inner>, result: Result<Vec<Value>>) {
    let mut out = Vec::new();
    let first = {
        let mut st = inner.lock();
        st.resuming = false;
        match &result {
            Ok(args) => {
                st.engine.on_resume_ack(args, Instant::now(), &mut out);
            }
            Err(e) => {
                out.push(Output::Event(Event::error(Error::transport(
                    V,
                    "resume",
                    e.to_string(),
                ))));
            }
        }
        st.first_connect.take()
    };
    inner.apply(out);
    if let Some(tx) = first {
        let _ = tx.send(result.map(|_| ()));
    }
}

/// Handles one socket event; returns true when the session is over.
fn on_sio(inner: &Arc<Inner>, ev: SioEvent) -> bool {
    if let Some(state) = ev.connection_state() {
        inner.emit_event(Event::Connection(state));
    }
    match ev {
        SioEvent::Connected { .. } => {
            inner.lock().engine.on_connected();
            // The widget asks CHAT_RESUMED on every connect: the history settles messages
            // whose fate the drop left open and brings what arrived meanwhile.
            inner.ask_resume();
        }
        SioEvent::Disconnected { .. } => {
            inner.lock().engine.on_disconnected();
        }
        SioEvent::ConnectError { message, .. } => {
            let err = error::connect_refused(&message);
            let first = inner.lock().first_connect.take();
            match first {
                Some(tx) => {
                    let _ = tx.send(Err(err));
                }
                None => inner.emit_event(Event::error(err)),
            }
        }
        SioEvent::Event { name, args, ack } => {
            if name == event::SESSION_REPLACED {
                inner.emit_event(Event::Vendor {
                    vendor: V,
                    name: name.into(),
                    payload: Arc::new(Value::Array(args)),
                });
                return false;
            }
            let out = inner.lock().engine.on_event(&name, &args, Instant::now());
            inner.apply(out);
            if let Some(id) = ack {
                let io = inner.io.clone();
                tokio::spawn(async move {
                    let _ = io.ack(id, &[]).await;
                });
            }
        }
        SioEvent::Error(e) => inner.emit_event(Event::Error(e)),
        SioEvent::Connecting { .. } | SioEvent::Reconnecting { .. } => {}
        SioEvent::Closed { reason } => {
            let (first, start) = {
                let mut st = inner.lock();
                st.closed = true;
                st.engine.on_disconnected();
                (st.first_connect.take(), st.start.take())
            };
            if let Some(tx) = first {
                let _ = tx.send(Err(Error::transport(V, "connect", reason.clone())));
            }
            if let Some(tx) = start {
                let _ = tx.send(Err(Error::closed(V, "session")));
            }
            inner.emit_event(Event::ShutDown {
                reason: reason.into(),
            });
            return true;
        }
    }
    false
}

#[async_trait]
impl Session for ExpertflowSession {
    fn vendor(&self) -> Vendor {
        V
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe()
    }

    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn Engagement>> {
        if !request.bot_history.is_empty() {
            return Err(Error::unsupported(V, Feature::BotHistoryHandoff));
        }
        let (tx, rx) = oneshot::channel();
        let payload = {
            let mut st = self.inner.lock();
            if st.closed {
                return Err(Error::closed(V, "session"));
            }
            if st
                .engine
                .chat
                .as_ref()
                .is_some_and(|c| c.state != EngagementState::Ended)
            {
                return Err(Error::Rejected {
                    vendor: V,
                    code: "CHAT_ACTIVE".to_owned(),
                    message: "this customer already has a chat; end it or resume it".to_owned(),
                    retry_after: None,
                });
            }
            if st.start.is_some() {
                return Err(Error::Rejected {
                    vendor: V,
                    code: "CHAT_STARTING".to_owned(),
                    message: "a chat request is already on its way".to_owned(),
                    retry_after: None,
                });
            }
            let customer = customer_data(&self.inner.config, Some(&request));
            let mut me = request.customer.participant();
            me.id = Some(
                self.inner
                    .config
                    .channel_customer_identifier
                    .as_str()
                    .into(),
            );
            st.engine.me = me;
            st.engine.customer = customer.clone();
            st.start = Some(tx);
            ChatRequested::from_customer(&customer)
        };
        let v = serde_json::to_value(&payload)
            .map_err(|e| Error::invalid(V, "request", e.to_string()))?;
        if let Err(e) = self.inner.io.emit_queued(event::CHAT_REQUESTED, &[v]) {
            self.inner.lock().start = None;
            return Err(e);
        }
        let timeout = self.inner.config.timeout();
        let id = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(Error::closed(V, "session")),
            Err(_) => {
                self.inner.lock().start = None;
                return Err(Error::Timeout {
                    vendor: V,
                    operation: "chat request (CHANNEL_SESSION_STARTED)",
                    after: timeout,
                });
            }
        };
        let eng = self.engagement(id);
        if !request.context.is_empty() {
            // The widget stores the pre-chat answers by customer identifier once the
            // session starts.
            if let Err(e) = self.set_customer_data(&request.context).await {
                self.inner.emit_event(Event::error(e));
            }
        }
        if let Some(first) = request.first_message {
            eng.send(Content::Text(first)).await?;
        }
        Ok(Arc::new(eng))
    }

    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>> {
        let id = {
            let st = self.inner.lock();
            st.engine
                .chat
                .as_ref()
                .filter(|c| c.state != EngagementState::Ended)
                .map(|c| c.id.clone())
        };
        Ok(id
            .map(|id| Arc::new(self.engagement(id)) as Arc<dyn Engagement>)
            .into_iter()
            .collect())
    }

    async fn service_status(&self, _query: StatusQuery) -> Result<ServiceStatus> {
        self.inner.service_status().await
    }

    async fn start_call(&self, request: CallRequest) -> Result<Arc<dyn CallSession>> {
        Ok(Arc::new(self.call(request).await?))
    }

    async fn shutdown(&self) -> Result<()> {
        let (already, call) = {
            let mut st = self.inner.lock();
            (std::mem::replace(&mut st.closed, true), st.call.take())
        };
        if let Some(call) = call
            && !call.is_ended()
        {
            let _ = call.hangup().await;
        }
        if !already {
            self.inner.io.close().await;
        }
        Ok(())
    }
}

impl ExpertflowSession {
    /// Starts a call over the EF switch (what [`Session::start_call`] does, typed).
    ///
    /// Needs a live chat (the call is a second leg of the same conversation, as in the
    /// vendor's widget) and no other live call. Reads the widget config's `webRtc` block (with
    /// the `[expertflow.calls]` overrides), opens the media session, registers the shared
    /// extension at the switch (a refused registration is `Error::Auth` naming the switch's
    /// status and phrase), and returns the call in `Dialing`; the INVITE goes out at once.
    /// `request.routing.target` overrides the dialled number; `request.context` keys
    /// `agentExtension` and `customerId` fill `X-Agent-Extension` / `X-Customer-Id` (what the
    /// vendor's secure-link calls put there).
    pub async fn call(&self, request: CallRequest) -> Result<ExpertflowCall> {
        let customer = {
            let mut st = self.inner.lock();
            if st.closed {
                return Err(Error::closed(V, "session"));
            }
            let live_chat = st.engine.chat.as_ref().is_some_and(|c| {
                !matches!(c.state, EngagementState::Ended | EngagementState::Detached)
            });
            if !live_chat {
                return Err(Error::invalid(
                    V,
                    "call",
                    "an Expertflow call is a leg of a chat: start a chat first",
                ));
            }
            if st.call_starting || st.call.as_ref().is_some_and(|c| !c.is_ended()) {
                return Err(Error::invalid(V, "call", "a call is already in progress"));
            }
            st.call_starting = true;
            st.engine.customer.clone()
        };
        let r = self.call_inner(request, &customer).await;
        let mut st = self.inner.lock();
        st.call_starting = false;
        if let Ok(call) = &r {
            st.call = Some(call.clone());
        }
        r
    }

    async fn call_inner(
        &self,
        request: CallRequest,
        customer: &crate::wire::CustomerData,
    ) -> Result<ExpertflowCall> {
        let widget = self.widget_configs().await?;
        let calls = self.inner.config.calls.clone();
        let mut settings = crate::calls::settings(widget.web_rtc.as_ref(), &calls)?;
        if let Some(target) = request.routing.target.as_deref().map(str::trim)
            && !target.is_empty()
        {
            if target.contains(|c: char| c.is_whitespace() || c == '@') {
                return Err(Error::invalid(
                    V,
                    "routing.target",
                    format!("{target:?} is not a number to dial"),
                ));
            }
            target.clone_into(&mut settings.dialling_uri);
        }
        let form = |key: &str| {
            customer
                .form_data
                .attributes
                .iter()
                .find(|a| a.key == key)
                .map(|a| a.value.clone())
        };
        let c = &request.customer;
        let name = match (&c.first_name, &c.last_name) {
            (None, None) => c.nickname.clone().or_else(|| {
                let n = [form("firstName"), form("lastName")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!n.is_empty()).then_some(n)
            }),
            (f, l) => Some(
                [f.clone(), l.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        };
        let caller = CallerInfo {
            customer_name: name.unwrap_or_default(),
            agent_extension: request
                .context
                .get("agentExtension")
                .cloned()
                .unwrap_or_default(),
            customer_number: c
                .phone
                .clone()
                .or_else(|| form("phone"))
                .unwrap_or_else(|| self.inner.config.channel_customer_identifier.clone()),
            customer_id: request
                .context
                .get("customerId")
                .cloned()
                .or_else(|| c.id.clone())
                .unwrap_or_else(|| self.inner.config.channel_customer_identifier.clone()),
            destination: settings.dialling_uri.clone(),
            video: request.video,
        };
        crate::calls::start(
            CallSetup {
                settings,
                calls,
                caller,
                tls: self.inner.tls.clone(),
                session_bus: self.inner.bus.clone(),
                connect_timeout: self.inner.config.timeout(),
            },
            request,
        )
        .await
    }
}

impl Inner {
    async fn service_status(&self) -> Result<ServiceStatus> {
        let url = join(
            &self.urls().calendar,
            &format!(
                "channels/service-identifier/{}",
                self.config.service_identifier
            ),
        );
        let cal: Value = self.http.get_json(&url).await?;
        let calendar_id = ["calendarId", "id"]
            .iter()
            .find_map(|k| cal.get(*k).and_then(Value::as_str))
            .or_else(|| cal.pointer("/calendar/id").and_then(Value::as_str))
            .map(str::to_owned);
        let Some(calendar_id) = calendar_id else {
            return Ok(ServiceStatus {
                availability: Availability::Open,
                ..ServiceStatus::UNKNOWN
            });
        };
        let now = Timestamp::now().unix_ms();
        let day = 86_400_000;
        let r = self
            .http
            .request(
                Method::GET,
                &join(&self.urls().calendar, "calendars/events"),
            )
            .query(&[
                ("calendarId", calendar_id.as_str()),
                ("startTime", &(now - day).to_string()),
                ("endTime", &(now + 7 * day).to_string()),
            ])
            .send()
            .await?;
        let events: Vec<CalendarEvent> = r.json()?;
        Ok(status_from_calendar(&events, now))
    }
}

/// Parses a calendar time: epoch milliseconds or RFC 3339.
pub(crate) fn parse_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| Timestamp::parse_rfc3339(s).map(Timestamp::unix_ms)),
        _ => None,
    }
}

fn weekday(ms: i64) -> Weekday {
    const DAYS: [Weekday; 7] = [
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
    ];
    DAYS[ms.div_euclid(86_400_000).rem_euclid(7) as usize]
}

/// Availability and opening windows (UTC) from business calendar events: open when now is
/// inside a `BUSINESS_HOURS` event and not inside a closing one (any other type).
pub(crate) fn status_from_calendar(events: &[CalendarEvent], now: i64) -> ServiceStatus {
    let mut open = false;
    let mut closed = false;
    let mut windows = Vec::new();
    for e in events {
        let (Some(start), Some(end)) = (parse_time(&e.start_time), parse_time(&e.end_time)) else {
            continue;
        };
        let business = e
            .kind
            .as_deref()
            .is_none_or(|k| k.eq_ignore_ascii_case("BUSINESS_HOURS"));
        let inside = start <= now && now < end;
        if business {
            open |= inside;
            if end > now && end - start <= 86_400_000 {
                let minute = |t: i64| u16::try_from(t.rem_euclid(86_400_000) / 60_000).unwrap_or(0);
                windows.push(OpeningWindow {
                    day: weekday(start),
                    open_minute: minute(start),
                    close_minute: if weekday(end) == weekday(start) {
                        minute(end)
                    } else {
                        1440
                    },
                });
            }
        } else {
            closed |= inside;
        }
    }
    windows.sort_by_key(|w| (w.day, w.open_minute));
    windows.dedup();
    ServiceStatus {
        availability: if open && !closed {
            Availability::Open
        } else {
            Availability::ClosedByCalendar
        },
        agents_available: None,
        queue_length: None,
        expected_wait: None,
        opening_hours: Some(OpeningHours {
            time_zone: Some("UTC".to_owned()),
            windows,
        }),
    }
}

impl ExpertflowEngagement {
    fn with_chat<T>(&self, f: impl FnOnce(&mut crate::engine::Chat) -> T) -> Option<T> {
        let mut st = self.inner.lock();
        st.engine.chat.as_mut().filter(|c| c.id == self.id).map(f)
    }

    fn ensure_live(&self) -> Result<()> {
        let st = self.inner.lock();
        if st.closed {
            return Err(Error::closed(V, "session"));
        }
        match st.engine.chat.as_ref().filter(|c| c.id == self.id) {
            Some(c)
                if c.state != EngagementState::Ended && c.state != EngagementState::Detached =>
            {
                Ok(())
            }
            _ => Err(Error::closed(V, "chat")),
        }
    }

    fn push(&self, content: Content) -> Result<SentMessage> {
        {
            let st = self.inner.lock();
            st.engine.message_envelope(&content)?;
        }
        self.ensure_live()?;
        let sent = self
            .with_chat(|c| {
                let m = c.outbox.push(content, Timestamp::now(), Instant::now());
                c.transcript.upsert(m.clone());
                sent_message(&m)
            })
            .ok_or_else(|| Error::closed(V, "chat"))?;
        self.inner.kick.notify_one();
        Ok(sent)
    }
}

#[async_trait]
impl Engagement for ExpertflowEngagement {
    fn vendor(&self) -> Vendor {
        V
    }

    fn id(&self) -> EngagementId {
        self.id.clone()
    }

    fn state(&self) -> EngagementState {
        self.with_chat(|c| c.state)
            .unwrap_or(EngagementState::Ended)
    }

    fn participants(&self) -> Vec<Participant> {
        self.with_chat(|c| c.participants.clone())
            .unwrap_or_default()
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe_engagement(self.id.clone())
    }

    fn transcript(&self) -> Vec<Message> {
        self.with_chat(|c| c.transcript.visible())
            .unwrap_or_default()
    }

    async fn send(&self, content: Content) -> Result<SentMessage> {
        if let Content::Text(t) = &content
            && t.trim().is_empty()
        {
            return Err(Error::invalid(V, "content", "empty text"));
        }
        if let Content::File(a) = &content
            && a.url.is_none()
        {
            return Err(Error::invalid(
                V,
                "content.url",
                "a file needs its download URL; use `upload`",
            ));
        }
        self.push(content)
    }

    async fn typing(&self, on: bool) -> Result<()> {
        self.ensure_live()?;
        {
            // While the customer keeps typing, the agent already sees it: one
            // TYPING_STARTED per cooldown, as the widget.
            let mut st = self.inner.lock();
            let now = Instant::now();
            if on {
                if st
                    .typing_sent
                    .is_some_and(|t| now.duration_since(t) < TYPING_COOLDOWN)
                {
                    return Ok(());
                }
                st.typing_sent = Some(now);
            } else {
                st.typing_sent = None;
            }
        }
        let kind = if on {
            "TYPING_STARTED"
        } else {
            "TYPING_STOPPED"
        };
        let r = self
            .inner
            .emit_envelope("NOTIFICATION", Body::notification(kind), false)
            .await;
        if r.is_err() && on {
            self.inner.lock().typing_sent = None;
        }
        r
    }

    async fn mark(&self, message: &MessageId, receipt: Receipt) -> Result<()> {
        if receipt == Receipt::Delivered {
            return Err(Error::unsupported(V, Feature::DeliveryReceipts));
        }
        self.ensure_live()?;
        self.inner
            .emit_envelope(
                "DELIVERYNOTIFICATION",
                Body::delivery(message.as_str(), "READ"),
                false,
            )
            .await
    }

    async fn history(&self, page_size: u32) -> Result<Box<dyn HistoryPager>> {
        let inner = Arc::clone(&self.inner);
        let conv = self.id.to_string();
        let source = move |req: PageRequest| {
            let inner = Arc::clone(&inner);
            let conv = conv.clone();
            async move {
                match req {
                    PageRequest::Number { page: 1, .. }
                    | PageRequest::Older { before: None, .. } => {
                        let messages = inner.transcript(&conv).await?;
                        Ok(cc_chat::FetchedPage {
                            messages,
                            has_older: Some(false),
                            has_newer: Some(false),
                            ..Default::default()
                        })
                    }
                    _ => Ok(cc_chat::FetchedPage {
                        has_older: Some(false),
                        has_newer: Some(false),
                        ..Default::default()
                    }),
                }
            }
            .boxed()
        };
        Ok(Box::new(Pager::new(
            V,
            PagingMode::PageNumber,
            page_size.max(1),
            source,
        )?))
    }

    async fn upload(&self, file: Upload) -> Result<SentMessage> {
        self.ensure_live()?;
        let stored = self.inner.upload(&file).await?;
        let url = self.inner.download_url(&stored.name);
        self.push(Content::File(cc_core::Attachment {
            id: Some(stored.name.clone()),
            name: file.name.clone(),
            mime_type: stored
                .kind
                .clone()
                .unwrap_or_else(|| file.mime_type.clone()),
            size: stored.size.or(Some(file.bytes.len() as u64)),
            url: Some(url),
        }))
    }

    async fn set_context(&self, context: BTreeMap<String, String>) -> Result<()> {
        self.ensure_live()?;
        let url = join(
            &self.inner.urls().conversation,
            &format!("{}/conversation-data", self.id),
        );
        self.inner
            .http
            .request(Method::POST, &url)
            .json(&context)
            .send()
            .await
            .map(|_| ())
    }

    async fn end(&self, reason: Option<String>) -> Result<()> {
        self.ensure_live()?;
        let customer = self.inner.lock().engine.customer.clone();
        let v = serde_json::to_value(&customer)
            .map_err(|e| Error::invalid(V, "customer", e.to_string()))?;
        // Queued on the socket: written now, or first thing after a reconnect (before the
        // CHAT_RESUMED of that connection), so ending works while disconnected too.
        self.inner.io.emit_queued(event::CHAT_ENDED, &[v])?;
        let mut out = Vec::new();
        self.inner
            .lock()
            .engine
            .end_chat(Initiator::Customer, reason, &mut out);
        self.inner.apply(out);
        Ok(())
    }

    async fn leave(&self) -> Result<()> {
        self.ensure_live()?;
        self.with_chat(|c| c.state = EngagementState::Detached);
        self.inner.lock().closed = true;
        self.inner.io.close().await;
        Ok(())
    }
}
