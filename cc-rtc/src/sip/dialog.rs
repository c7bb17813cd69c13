//! Calls: [`Dialog`] (outgoing from the INVITE on, incoming once answered) and
//! [`IncomingCall`].

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cc_core::{Error, Result, Vendor};
use tokio::sync::mpsc;

use super::codec::{Method, NameAddr, SipMessage, end_reason, list_entries, random_token};
use super::ua::{
    ALLOW, Inner, TxOutcome, UaEvent, challenge_of, connection_lost, new_branch, refusal, reply,
};

/// Progress and in-dialog requests of a call, from [`Dialog::next_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialogEvent {
    /// `100 Trying` arrived (outgoing calls).
    Trying,
    /// `180`/`183` (or another 1xx) arrived (outgoing calls).
    Ringing {
        /// The status code (180, 183, ...).
        status: u16,
        /// The early-media SDP when the provisional response carried one.
        early_sdp: Option<String>,
    },
    /// The far end answered (`200` to the INVITE); the ACK is already sent.
    Answered {
        /// The SDP answer.
        sdp: String,
    },
    /// The INVITE failed (final status ≥ 300, or 408 when nothing answered in time). The
    /// reason is `X-Call-Dropped-Custom-Reason`, else the `Reason` header's text, else the
    /// reason phrase. The dialog is over.
    Failed {
        /// The status code.
        status: u16,
        /// The reason.
        reason: String,
    },
    /// The far end re-offered (hold, resume, ICE restart). Answer with
    /// [`Dialog::answer_reinvite`] or [`Dialog::reject_reinvite`].
    ReInvite {
        /// The new offer (empty for an offerless re-INVITE).
        sdp: String,
    },
    /// An `INFO` arrived (already answered with 200). For DTMF see [`parse_dtmf_relay`].
    Info {
        /// The `Content-Type` value.
        content_type: String,
        /// The body.
        body: String,
    },
    /// The far end hung up (`BYE`, already answered with 200). The dialog is over.
    Bye {
        /// `X-Call-Dropped-Custom-Reason`, else the `Reason` header's text.
        reason: Option<String>,
    },
    /// The caller cancelled an incoming call before it was answered (487 sent). Over.
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Early,
    Confirmed,
    Terminated,
}

struct DState {
    phase: Phase,
    /// Our identity header with our tag (From on our requests).
    local_header: String,
    /// Their identity header, with their tag once known (To on our requests).
    remote_header: String,
    remote_tag: Option<String>,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    /// Outgoing: the INVITE in flight.
    invite: Option<SipMessage>,
    provisional: bool,
    cancel_wanted: bool,
    cancel_sent_at: Option<tokio::time::Instant>,
    /// Outgoing: the ACK of the 2xx, sent again if the 2xx repeats.
    last_ack: Option<SipMessage>,
    /// Incoming: the initial INVITE until its final response.
    incoming_invite: Option<SipMessage>,
    /// An incoming re-INVITE waiting for the app's answer.
    pending_reinvite: Option<SipMessage>,
    /// Our own re-INVITE is in flight.
    reinviting: bool,
    /// CSeq of a 2xx (to an INVITE) we sent that awaits its ACK.
    awaiting_ack: Option<u32>,
    events: Option<mpsc::UnboundedSender<DialogEvent>>,
}

pub(crate) struct DialogShared {
    ua: Weak<Inner>,
    vendor: Vendor,
    call_id: String,
    local_tag: String,
    incoming: bool,
    /// Incoming: the top Via branch of the initial INVITE.
    initial_branch: Option<String>,
    state: Mutex<DState>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<DialogEvent>>,
}

/// One call (SIP dialog). A cheap, cloneable handle; outgoing calls are dialogs from the
/// INVITE on ([`OutgoingCall`](super::OutgoingCall) is the same type).
#[derive(Clone)]
pub struct Dialog {
    shared: Arc<DialogShared>,
}

impl fmt::Debug for Dialog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Dialog")
            .field("call_id", &self.shared.call_id)
            .field("local_tag", &self.shared.local_tag)
            .field("remote_tag", &state.remote_tag)
            .field("incoming", &self.shared.incoming)
            .field("phase", &state.phase)
            .finish()
    }
}

/// The INFO body of one DTMF digit as SIP.js sends it (`application/dtmf-relay`).
pub fn dtmf_relay_body(digit: char, duration_ms: u32) -> String {
    format!("Signal={digit}\r\nDuration={duration_ms}")
}

/// The digit of an `application/dtmf-relay` body (`Signal=5`), if any.
pub fn parse_dtmf_relay(body: &str) -> Option<char> {
    body.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("Signal") {
            return None;
        }
        let mut chars = v.trim().chars();
        let digit = chars.next()?;
        chars.next().is_none().then_some(digit)
    })
}

fn is_dtmf_digit(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A' | 'B' | 'C' | 'D')
}

/// The Contact URI of a request or response.
fn contact_target(message: &SipMessage) -> Option<String> {
    let value = message.header("Contact")?;
    let first = list_entries(value).into_iter().next()?;
    NameAddr::parse(first).ok().map(|n| n.uri)
}

/// Every Record-Route entry, in header order.
fn record_routes(message: &SipMessage) -> Vec<String> {
    message
        .headers_named("Record-Route")
        .flat_map(list_entries)
        .map(str::to_owned)
        .collect()
}

impl DialogShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, DState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ua(&self) -> Result<Arc<Inner>> {
        self.ua
            .upgrade()
            .ok_or_else(|| Error::closed(self.vendor, "SIP user agent"))
    }

    fn emit(&self, event: DialogEvent) {
        if let Some(tx) = &self.lock().events {
            let _ = tx.send(event);
        }
    }

    /// Ends the dialog: emits `last` (if any), closes the event channel, forgets it.
    fn terminate(&self, ua: &Inner, last: Option<DialogEvent>) {
        let tx = {
            let mut state = self.lock();
            state.phase = Phase::Terminated;
            state.events.take()
        };
        if let (Some(tx), Some(event)) = (tx, last) {
            let _ = tx.send(event);
        }
        ua.lock()
            .dialogs
            .remove(&(self.call_id.clone(), self.local_tag.clone()));
    }

    pub(crate) fn is_incoming_invite(&self, branch: &str) -> bool {
        self.initial_branch.as_deref() == Some(branch)
    }

    fn next_cseq(&self) -> u32 {
        let mut state = self.lock();
        state.local_cseq += 1;
        state.local_cseq
    }

    /// A request inside the dialog (Request-URI, Route set, tags, next CSeq).
    fn in_dialog_request(&self, ua: &Inner, method: Method, cseq: Option<u32>) -> SipMessage {
        let cseq = cseq.unwrap_or_else(|| self.next_cseq());
        let state = self.lock();
        // Loose routing; a first route without `lr` means a strict router (RFC 3261 §12.2.1.1).
        let strict = state
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r).ok())
            .is_some_and(|r| !r.uri.split(';').any(|p| p.eq_ignore_ascii_case("lr")));
        let (uri, routes): (String, Vec<String>) = if strict {
            let first = NameAddr::parse(&state.route_set[0])
                .map(|n| n.uri)
                .unwrap_or_default();
            let mut rest = state.route_set[1..].to_vec();
            rest.push(format!("<{}>", state.remote_target));
            (first, rest)
        } else {
            (state.remote_target.clone(), state.route_set.clone())
        };
        let mut request = SipMessage::request(method.clone(), uri)
            .with_header("Via", ua.via(&new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header("To", state.remote_header.clone())
            .with_header("From", state.local_header.clone())
            .with_header("Call-ID", self.call_id.clone())
            .with_header("CSeq", format!("{cseq} {method}"));
        for route in routes {
            request.push_header("Route", route);
        }
        if method == Method::Invite {
            request.push_header("Contact", format!("<{}>", ua.contact_uri(true)));
            request.push_header("Allow", ALLOW);
            request.push_header("Supported", "outbound");
        }
        request.push_header("User-Agent", ua.config.user_agent.clone());
        request
    }

    fn ack_2xx(&self, ua: &Inner, cseq: u32) -> SipMessage {
        self.in_dialog_request(ua, Method::Ack, Some(cseq))
    }

    pub(crate) fn on_repeated_2xx(&self, ua: &Inner, response: &SipMessage) {
        let ack = self.lock().last_ack.clone();
        if let Some(ack) = ack
            && response.cseq().map(|c| c.0) == ack.cseq().map(|c| c.0)
        {
            let _ = ua.send(&ack);
        }
    }

    /// An in-dialog request from the far end.
    pub(crate) fn on_request(self: &Arc<Self>, ua: &Arc<Inner>, request: SipMessage) {
        let method = request.method().cloned().unwrap_or(Method::Options);
        match method {
            Method::Ack => {
                let cseq = request.cseq().map(|c| c.0);
                let mut state = self.lock();
                if state.awaiting_ack.is_some() && state.awaiting_ack == cseq {
                    state.awaiting_ack = None;
                }
            }
            Method::Bye => {
                reply(ua, &request, 200, "OK");
                let reason = end_reason(&request);
                self.terminate(ua, Some(DialogEvent::Bye { reason }));
            }
            Method::Invite => {
                let mut state = self.lock();
                if state.reinviting {
                    drop(state);
                    reply(ua, &request, 491, "Request Pending");
                } else if state.pending_reinvite.is_some() || state.awaiting_ack.is_some() {
                    drop(state);
                    let response = SipMessage::response_to(&request, 500, "Server Internal Error")
                        .with_header("Retry-After", "1");
                    let _ = ua.send(&response);
                } else {
                    let sdp = request.body.clone();
                    state.pending_reinvite = Some(request);
                    drop(state);
                    self.emit(DialogEvent::ReInvite { sdp });
                }
            }
            Method::Info => {
                reply(ua, &request, 200, "OK");
                self.emit(DialogEvent::Info {
                    content_type: request
                        .header("Content-Type")
                        .unwrap_or_default()
                        .to_owned(),
                    body: request.body,
                });
            }
            Method::Message => {
                reply(ua, &request, 200, "OK");
                ua.emit(UaEvent::Message {
                    from: request.header("From").unwrap_or_default().to_owned(),
                    call_id: self.call_id.clone(),
                    content_type: request
                        .header("Content-Type")
                        .unwrap_or_default()
                        .to_owned(),
                    body: request.body,
                });
            }
            Method::Options => reply(ua, &request, 200, "OK"),
            _ => reply(ua, &request, 501, "Not Implemented"),
        }
    }

    /// A CANCEL for our incoming INVITE.
    pub(crate) fn on_cancel(&self, ua: &Inner, cancel: &SipMessage) {
        let _ = ua.send(&SipMessage::response_to_tagged(
            cancel,
            200,
            "OK",
            &self.local_tag,
        ));
        let invite = self.lock().incoming_invite.take();
        if let Some(invite) = invite {
            let response =
                SipMessage::response_to_tagged(&invite, 487, "Request Terminated", &self.local_tag);
            let _ = ua.send(&response);
            self.terminate(ua, Some(DialogEvent::Cancelled));
        }
    }

    fn fail(&self, ua: &Inner, status: u16, reason: String) {
        self.terminate(ua, Some(DialogEvent::Failed { status, reason }));
    }

    /// Sends CANCEL for the INVITE in flight (after a provisional response).
    fn send_cancel(&self, ua: &Arc<Inner>) {
        let invite = {
            let mut state = self.lock();
            if state.cancel_sent_at.is_some() {
                return;
            }
            state.cancel_sent_at = Some(tokio::time::Instant::now());
            state.invite.clone()
        };
        let Some(invite) = invite else {
            return;
        };
        let cseq = invite.cseq().map(|c| c.0).unwrap_or(1);
        let mut cancel = SipMessage::request(Method::Cancel, invite.uri().unwrap_or_default());
        for name in ["Via", "Max-Forwards", "To", "From", "Call-ID"] {
            if let Some(v) = invite.header(name) {
                cancel.push_header(name, v);
            }
        }
        cancel.push_header("CSeq", format!("{cseq} CANCEL"));
        for route in invite.headers_named("Route") {
            cancel.push_header("Route", route);
        }
        cancel.push_header("User-Agent", ua.config.user_agent.clone());
        match ua.start_tx(&cancel) {
            Ok((mut rx, key)) => {
                let ua = ua.clone();
                tokio::spawn(async move {
                    let _ = ua.wait_final(&mut rx).await;
                    ua.end_tx(&key);
                });
            }
            Err(e) => tracing::debug!(error = %e, "CANCEL not sent"),
        }
    }

    /// Repeats our 2xx (to an INVITE) until its ACK arrives; without one after the
    /// transaction timeout, hangs up (RFC 3261 §13.3.1.4).
    fn retransmit_2xx(self: &Arc<Self>, ua: &Arc<Inner>, response: SipMessage, cseq: u32) {
        let shared = self.clone();
        let weak = Arc::downgrade(ua);
        let limit = ua.config.transaction_timeout;
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut interval = Duration::from_millis(500);
            loop {
                tokio::time::sleep(interval).await;
                let Some(ua) = weak.upgrade() else {
                    return;
                };
                {
                    let state = shared.lock();
                    if state.awaiting_ack != Some(cseq) || state.phase == Phase::Terminated {
                        return;
                    }
                }
                if start.elapsed() >= limit {
                    tracing::warn!(vendor = %ua.vendor, call_id = %shared.call_id, "no ACK for our 2xx; hanging up");
                    let bye = shared.in_dialog_request(&ua, Method::Bye, None);
                    let _ = ua.send(&bye);
                    shared.terminate(
                        &ua,
                        Some(DialogEvent::Bye {
                            reason: Some("no ACK".to_owned()),
                        }),
                    );
                    return;
                }
                let _ = ua.send(&response);
                interval = (interval * 2).min(Duration::from_secs(4));
            }
        });
    }
}

/// Runs an outgoing INVITE transaction (and its digest retry) to its end.
async fn run_invite(shared: Arc<DialogShared>, mut invite: SipMessage) {
    let Ok(ua) = shared.ua() else {
        return;
    };
    let mut answered_fresh = false;
    loop {
        let (mut rx, key) = match ua.start_tx(&invite) {
            Ok(x) => x,
            Err(e) => {
                shared.fail(&ua, 503, e.to_string());
                return;
            }
        };
        {
            let mut state = shared.lock();
            state.invite = Some(invite.clone());
            state.provisional = false;
            state.cancel_sent_at = None;
        }
        let started = tokio::time::Instant::now();
        let response = loop {
            let deadline = {
                let state = shared.lock();
                if !state.provisional {
                    Some(started + ua.config.transaction_timeout)
                } else {
                    state
                        .cancel_sent_at
                        .map(|at| at + ua.config.transaction_timeout)
                }
            };
            let next = match deadline {
                Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            };
            match next {
                None => {
                    ua.end_tx(&key);
                    let cancelled = shared.lock().cancel_wanted;
                    if cancelled {
                        shared.fail(&ua, 487, "Request Terminated".to_owned());
                    } else {
                        shared.fail(&ua, 408, "Request Timeout".to_owned());
                    }
                    return;
                }
                Some(None) => {
                    shared.fail(&ua, 503, "connection lost".to_owned());
                    return;
                }
                Some(Some(r)) if r.status().is_some_and(|s| s < 200) => {
                    on_provisional(&shared, &ua, &r);
                }
                Some(Some(r)) => break r,
            }
        };
        ua.end_tx(&key);
        let status = response.status().unwrap_or_default();
        if (200..300).contains(&status) {
            on_answered(&shared, &ua, &invite, &response).await;
            return;
        }
        // A non-2xx final response is acknowledged inside the transaction.
        let mut ack = SipMessage::request(Method::Ack, invite.uri().unwrap_or_default());
        for name in ["Via", "Max-Forwards"] {
            if let Some(v) = invite.header(name) {
                ack.push_header(name, v);
            }
        }
        ack.push_header("To", response.header("To").unwrap_or_default());
        for name in ["From", "Call-ID"] {
            if let Some(v) = invite.header(name) {
                ack.push_header(name, v);
            }
        }
        let cseq = invite.cseq().map(|c| c.0).unwrap_or(1);
        ack.push_header("CSeq", format!("{cseq} ACK"));
        for route in invite.headers_named("Route") {
            ack.push_header("Route", route);
        }
        let _ = ua.send(&ack);

        let cancelled = shared.lock().cancel_wanted;
        if matches!(status, 401 | 407)
            && !cancelled
            && let Some((header, challenge)) = challenge_of(&response)
            && (!answered_fresh || challenge.stale)
        {
            let uri = invite.uri().unwrap_or_default().to_owned();
            match ua.answer_challenge(&challenge, &Method::Invite, &uri, 1) {
                Ok(Some(value)) => {
                    answered_fresh = true;
                    invite.remove_header("Authorization");
                    invite.remove_header("Proxy-Authorization");
                    invite.push_header(header, value);
                    invite.set_header("Via", ua.via(&new_branch()));
                    invite.set_header("CSeq", format!("{} INVITE", shared.next_cseq()));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    ua.emit(UaEvent::Error(Arc::new(e)));
                }
            }
        }
        let reason = end_reason(&response).unwrap_or_default();
        shared.fail(&ua, status, reason);
        return;
    }
}

fn on_provisional(shared: &Arc<DialogShared>, ua: &Arc<Inner>, response: &SipMessage) {
    let status = response.status().unwrap_or(100);
    let cancel_now = {
        let mut state = shared.lock();
        state.provisional = true;
        state.cancel_wanted && state.cancel_sent_at.is_none()
    };
    if cancel_now {
        shared.send_cancel(ua);
    }
    if status == 100 {
        shared.emit(DialogEvent::Trying);
    } else {
        let early_sdp = (!response.body.is_empty()).then(|| response.body.clone());
        shared.emit(DialogEvent::Ringing { status, early_sdp });
    }
}

async fn on_answered(
    shared: &Arc<DialogShared>,
    ua: &Arc<Inner>,
    invite: &SipMessage,
    response: &SipMessage,
) {
    let cseq = invite.cseq().map(|c| c.0).unwrap_or(1);
    let cancelled = {
        let mut state = shared.lock();
        state.phase = Phase::Confirmed;
        state.remote_tag = response.to_tag().map(str::to_owned);
        state.remote_header = response
            .header("To")
            .unwrap_or(&state.remote_header)
            .to_owned();
        if let Some(target) = contact_target(response) {
            state.remote_target = target;
        }
        let mut routes = record_routes(response);
        routes.reverse();
        state.route_set = routes;
        state.invite = None;
        state.cancel_wanted
    };
    let ack = shared.ack_2xx(ua, cseq);
    shared.lock().last_ack = Some(ack.clone());
    let _ = ua.send(&ack);
    if contact_target(response).is_none() {
        ua.emit(UaEvent::Error(Arc::new(Error::protocol(
            ua.vendor,
            format!("SIP frame {:?}", response.first_line()),
            "2xx to INVITE without Contact",
        ))));
    }
    if cancelled {
        // The answer crossed our CANCEL: end the call at once.
        let bye = shared.in_dialog_request(ua, Method::Bye, None);
        shared.terminate(
            ua,
            Some(DialogEvent::Failed {
                status: 487,
                reason: "Request Terminated".to_owned(),
            }),
        );
        let _ = ua.request(bye, || shared.next_cseq()).await;
        return;
    }
    shared.emit(DialogEvent::Answered {
        sdp: response.body.clone(),
    });
}

impl Dialog {
    fn new_shared(
        ua: &Arc<Inner>,
        call_id: String,
        local_tag: String,
        incoming: bool,
        initial_branch: Option<String>,
        state: DStateInit,
    ) -> Arc<DialogShared> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(DialogShared {
            ua: Arc::downgrade(ua),
            vendor: ua.vendor,
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            incoming,
            initial_branch,
            state: Mutex::new(DState {
                phase: Phase::Early,
                local_header: state.local_header,
                remote_header: state.remote_header,
                remote_tag: state.remote_tag,
                remote_target: state.remote_target,
                route_set: state.route_set,
                local_cseq: state.local_cseq,
                invite: None,
                provisional: false,
                cancel_wanted: false,
                cancel_sent_at: None,
                last_ack: None,
                incoming_invite: state.incoming_invite,
                pending_reinvite: None,
                reinviting: false,
                awaiting_ack: None,
                events: Some(tx),
            }),
            events: tokio::sync::Mutex::new(rx),
        });
        ua.lock()
            .dialogs
            .insert((call_id, local_tag), shared.clone());
        shared
    }

    pub(crate) fn start_outgoing(
        ua: &Arc<Inner>,
        target: &str,
        headers: Vec<(String, String)>,
        sdp: String,
    ) -> Result<Dialog> {
        let call_id = random_token(22);
        let local_tag = random_token(10);
        let local_header = format!("{};tag={local_tag}", ua.local_identity());
        let remote_header = format!("<{target}>");
        let mut invite = SipMessage::request(Method::Invite, target)
            .with_header("Via", ua.via(&new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header("To", remote_header.clone())
            .with_header("From", local_header.clone())
            .with_header("Call-ID", call_id.clone())
            .with_header("CSeq", "1 INVITE")
            .with_header("Contact", format!("<{}>", ua.contact_uri(true)));
        for (name, value) in headers {
            invite.push_header(name, value);
        }
        let invite = invite
            .with_header("Allow", ALLOW)
            .with_header("Supported", "outbound")
            .with_header("User-Agent", ua.config.user_agent.clone())
            .with_body("application/sdp", sdp);
        let shared = Dialog::new_shared(
            ua,
            call_id,
            local_tag,
            false,
            None,
            DStateInit {
                local_header,
                remote_header,
                remote_tag: None,
                remote_target: target.to_owned(),
                route_set: Vec::new(),
                local_cseq: 1,
                incoming_invite: None,
            },
        );
        tokio::spawn(run_invite(shared.clone(), invite));
        Ok(Dialog { shared })
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.shared.call_id
    }

    /// Our tag.
    pub fn local_tag(&self) -> &str {
        &self.shared.local_tag
    }

    /// The far end's tag, once known.
    pub fn remote_tag(&self) -> Option<String> {
        self.shared.lock().remote_tag.clone()
    }

    /// Whether the call was answered and is not over.
    pub fn is_established(&self) -> bool {
        self.shared.lock().phase == Phase::Confirmed
    }

    /// Whether the call is over (failed, cancelled, hung up).
    pub fn is_terminated(&self) -> bool {
        self.shared.lock().phase == Phase::Terminated
    }

    /// The next event; `None` once the dialog is over and every event was read.
    pub async fn next_event(&self) -> Option<DialogEvent> {
        self.shared.events.lock().await.recv().await
    }

    /// Ends an outgoing call that was not answered yet: sends CANCEL as soon as a
    /// provisional response arrived (at once if one did). The INVITE then fails with 487
    /// ([`DialogEvent::Failed`]). On an answered call this hangs up with BYE instead; on a
    /// finished call it does nothing.
    pub async fn cancel(&self) -> Result<()> {
        let ua = self.shared.ua()?;
        let (phase, send_now) = {
            let mut state = self.shared.lock();
            if state.phase == Phase::Early && !self.shared.incoming {
                state.cancel_wanted = true;
            }
            (
                state.phase,
                state.provisional && state.cancel_sent_at.is_none(),
            )
        };
        match phase {
            Phase::Early if self.shared.incoming => Err(Error::invalid(
                self.shared.vendor,
                "sip.cancel",
                "an incoming call is refused with IncomingCall::reject",
            )),
            Phase::Early => {
                if send_now {
                    self.shared.send_cancel(&ua);
                }
                Ok(())
            }
            Phase::Confirmed => self.bye(Vec::new()).await,
            Phase::Terminated => Ok(()),
        }
    }

    /// Hangs up an answered call with BYE carrying `headers` (e.g.
    /// `X-Call-Dropped-Custom-Reason`). The dialog is over at once; the result says how the
    /// far end answered (2xx or 481 → `Ok`).
    pub async fn bye(&self, headers: Vec<(String, String)>) -> Result<()> {
        let ua = self.shared.ua()?;
        if self.shared.lock().phase != Phase::Confirmed {
            return Err(Error::invalid(
                self.shared.vendor,
                "sip.bye",
                "the call is not established (cancel an outgoing call, reject an incoming one)",
            ));
        }
        let mut bye = self.shared.in_dialog_request(&ua, Method::Bye, None);
        for (name, value) in headers {
            bye.push_header(name, value);
        }
        self.shared.terminate(&ua, None);
        let shared = self.shared.clone();
        let response = ua.request(bye, move || shared.next_cseq()).await?;
        match response.status() {
            Some(200..=299 | 481) => Ok(()),
            _ => Err(refusal(ua.vendor, &response)),
        }
    }

    /// Re-offers (hold: `a=sendonly`, resume: `a=sendrecv`, ICE restart) and returns the far
    /// end's SDP answer. A refusal (e.g. 491 Request Pending, 488) is an error and leaves
    /// the call as it was.
    pub async fn reinvite(&self, sdp: String) -> Result<String> {
        let ua = self.shared.ua()?;
        {
            let mut state = self.shared.lock();
            if state.phase != Phase::Confirmed {
                return Err(Error::invalid(
                    self.shared.vendor,
                    "sip.reinvite",
                    "the call is not established",
                ));
            }
            if state.reinviting {
                return Err(Error::invalid(
                    self.shared.vendor,
                    "sip.reinvite",
                    "a re-INVITE is already in progress",
                ));
            }
            state.reinviting = true;
        }
        let result = self.reinvite_inner(&ua, sdp).await;
        self.shared.lock().reinviting = false;
        result
    }

    async fn reinvite_inner(&self, ua: &Arc<Inner>, sdp: String) -> Result<String> {
        let mut invite = self
            .shared
            .in_dialog_request(ua, Method::Invite, None)
            .with_body("application/sdp", sdp);
        let mut answered_fresh = false;
        loop {
            let (mut rx, key) = ua.start_tx(&invite)?;
            // Timer B, restarted by each provisional response.
            let outcome = loop {
                match tokio::time::timeout(ua.config.transaction_timeout, rx.recv()).await {
                    Err(_) => break TxOutcome::Timeout,
                    Ok(None) => break TxOutcome::Closed,
                    Ok(Some(r)) if r.status().is_some_and(|s| s < 200) => continue,
                    Ok(Some(r)) => break TxOutcome::Final(r),
                }
            };
            ua.end_tx(&key);
            let response = match outcome {
                TxOutcome::Final(r) => r,
                TxOutcome::Timeout => {
                    return Err(Error::Timeout {
                        vendor: ua.vendor,
                        operation: "SIP re-INVITE",
                        after: ua.config.transaction_timeout,
                    });
                }
                TxOutcome::Closed => return Err(connection_lost(ua.vendor, &Method::Invite)),
            };
            let status = response.status().unwrap_or_default();
            let cseq = invite.cseq().map(|c| c.0).unwrap_or(1);
            if (200..300).contains(&status) {
                {
                    let mut state = self.shared.lock();
                    if let Some(target) = contact_target(&response) {
                        state.remote_target = target;
                    }
                }
                let ack = self.shared.ack_2xx(ua, cseq);
                self.shared.lock().last_ack = Some(ack.clone());
                ua.send(&ack)?;
                return Ok(response.body);
            }
            // Non-2xx: ACK within the transaction.
            let mut ack = SipMessage::request(Method::Ack, invite.uri().unwrap_or_default());
            for name in ["Via", "Max-Forwards"] {
                if let Some(v) = invite.header(name) {
                    ack.push_header(name, v);
                }
            }
            ack.push_header("To", response.header("To").unwrap_or_default());
            for name in ["From", "Call-ID"] {
                if let Some(v) = invite.header(name) {
                    ack.push_header(name, v);
                }
            }
            ack.push_header("CSeq", format!("{cseq} ACK"));
            for route in invite.headers_named("Route") {
                ack.push_header("Route", route);
            }
            ua.send(&ack)?;
            if matches!(status, 401 | 407)
                && let Some((header, challenge)) = challenge_of(&response)
                && (!answered_fresh || challenge.stale)
            {
                let uri = invite.uri().unwrap_or_default().to_owned();
                if let Some(value) = ua.answer_challenge(&challenge, &Method::Invite, &uri, 1)? {
                    answered_fresh = true;
                    invite.remove_header("Authorization");
                    invite.remove_header("Proxy-Authorization");
                    invite.push_header(header, value);
                    invite.set_header("Via", ua.via(&new_branch()));
                    invite.set_header("CSeq", format!("{} INVITE", self.shared.next_cseq()));
                    continue;
                }
            }
            if matches!(status, 408 | 481) {
                // The dialog is gone on the far side (RFC 3261 §12.2.1.2).
                self.shared.terminate(
                    ua,
                    Some(DialogEvent::Bye {
                        reason: end_reason(&response),
                    }),
                );
            }
            return Err(refusal(ua.vendor, &response));
        }
    }

    /// Answers the far end's re-INVITE ([`DialogEvent::ReInvite`]) with 200 and `sdp`.
    pub fn answer_reinvite(&self, sdp: String) -> Result<()> {
        let ua = self.shared.ua()?;
        let request = self.shared.lock().pending_reinvite.take().ok_or_else(|| {
            Error::invalid(
                self.shared.vendor,
                "sip.answer_reinvite",
                "no re-INVITE is waiting for an answer",
            )
        })?;
        let cseq = request.cseq().map(|c| c.0).unwrap_or_default();
        if let Some(target) = contact_target(&request) {
            self.shared.lock().remote_target = target;
        }
        let response = SipMessage::response_to_tagged(&request, 200, "OK", &self.shared.local_tag)
            .with_header("Contact", format!("<{}>", ua.contact_uri(true)))
            .with_header("Allow", ALLOW)
            .with_header("Supported", "outbound")
            .with_header("User-Agent", ua.config.user_agent.clone())
            .with_body("application/sdp", sdp);
        self.shared.lock().awaiting_ack = Some(cseq);
        ua.send(&response)?;
        self.shared.retransmit_2xx(&ua, response, cseq);
        Ok(())
    }

    /// Refuses the far end's re-INVITE (e.g. 488 Not Acceptable Here); the call goes on
    /// as before.
    pub fn reject_reinvite(&self, status: u16, reason: &str) -> Result<()> {
        let ua = self.shared.ua()?;
        check_final(self.shared.vendor, status)?;
        let request = self.shared.lock().pending_reinvite.take().ok_or_else(|| {
            Error::invalid(
                self.shared.vendor,
                "sip.reject_reinvite",
                "no re-INVITE is waiting for an answer",
            )
        })?;
        ua.send(&SipMessage::response_to_tagged(
            &request,
            status,
            reason,
            &self.shared.local_tag,
        ))
    }

    /// Sends an in-dialog INFO and waits for its final response (2xx → `Ok`).
    pub async fn info(&self, content_type: &str, body: &str) -> Result<()> {
        let ua = self.shared.ua()?;
        if self.shared.lock().phase != Phase::Confirmed {
            return Err(Error::invalid(
                self.shared.vendor,
                "sip.info",
                "the call is not established",
            ));
        }
        let request = self
            .shared
            .in_dialog_request(&ua, Method::Info, None)
            .with_body(content_type, body);
        let shared = self.shared.clone();
        let response = ua.request(request, move || shared.next_cseq()).await?;
        match response.status() {
            Some(200..=299) => Ok(()),
            _ => Err(refusal(ua.vendor, &response)),
        }
    }

    /// Sends `digits` (`0-9 * # A-D`) as SIP INFO `application/dtmf-relay`, one request per
    /// digit, `Duration=150`, each waiting for its 200.
    pub async fn dtmf(&self, digits: &str) -> Result<()> {
        if let Some(bad) = digits.chars().find(|c| !is_dtmf_digit(*c)) {
            return Err(Error::invalid(
                self.shared.vendor,
                "dtmf",
                format!("`{bad}` is not a DTMF digit (0-9, *, #, A-D)"),
            ));
        }
        for digit in digits.chars() {
            self.info("application/dtmf-relay", &dtmf_relay_body(digit, 150))
                .await?;
        }
        Ok(())
    }
}

fn check_final(vendor: Vendor, status: u16) -> Result<()> {
    if (300..=699).contains(&status) {
        Ok(())
    } else {
        Err(Error::invalid(
            vendor,
            "sip.status",
            format!("{status} is not a refusal (300..=699)"),
        ))
    }
}

struct DStateInit {
    local_header: String,
    remote_header: String,
    remote_tag: Option<String>,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    incoming_invite: Option<SipMessage>,
}

/// A call for us, from [`UaEvent::Incoming`]. Ring, answer or reject it; until then
/// [`IncomingCall::next_event`] reports [`DialogEvent::Cancelled`] if the caller gives up.
///
/// A call nobody answers, rejects or keeps is refused with `480 Temporarily Unavailable`
/// when its last handle is dropped (at once when no one listens to the UA's events).
#[derive(Clone)]
pub struct IncomingCall {
    dialog: Dialog,
    invite: Arc<SipMessage>,
    _unanswered: Arc<Unanswered>,
}

/// Refuses the call when the last [`IncomingCall`] handle goes and it is still pending.
struct Unanswered(Arc<DialogShared>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        let shared = &self.0;
        let Some(invite) = shared.lock().incoming_invite.take() else {
            return;
        };
        let Some(ua) = shared.ua.upgrade() else {
            return;
        };
        let response = SipMessage::response_to_tagged(
            &invite,
            480,
            "Temporarily Unavailable",
            &shared.local_tag,
        );
        let _ = ua.send(&response);
        shared.terminate(&ua, None);
    }
}

impl fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingCall")
            .field("call_id", &self.dialog.shared.call_id)
            .field("from", &self.from())
            .finish_non_exhaustive()
    }
}

impl IncomingCall {
    pub(crate) fn new(ua: &Arc<Inner>, invite: SipMessage) -> IncomingCall {
        let call_id = invite.call_id().unwrap_or_default().to_owned();
        let local_tag = random_token(10);
        let remote_target =
            contact_target(&invite).unwrap_or_else(|| invite.uri().unwrap_or_default().to_owned());
        let local_header = format!(
            "{};tag={local_tag}",
            invite.header("To").unwrap_or_default()
        );
        let shared = Dialog::new_shared(
            ua,
            call_id,
            local_tag,
            true,
            invite.via_branch().map(str::to_owned),
            DStateInit {
                local_header,
                remote_header: invite.header("From").unwrap_or_default().to_owned(),
                remote_tag: invite.from_tag().map(str::to_owned),
                remote_target,
                route_set: record_routes(&invite),
                local_cseq: fastrand::u32(1..10_000),
                incoming_invite: Some(invite.clone()),
            },
        );
        IncomingCall {
            dialog: Dialog {
                shared: shared.clone(),
            },
            invite: Arc::new(invite),
            _unanswered: Arc::new(Unanswered(shared)),
        }
    }

    /// The `From` header value (the caller).
    pub fn from(&self) -> &str {
        self.invite.header("From").unwrap_or_default()
    }

    /// The `To` header value.
    pub fn to(&self) -> &str {
        self.invite.header("To").unwrap_or_default()
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.dialog.shared.call_id
    }

    /// The first value of header `name` of the INVITE.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.invite.header(name)
    }

    /// Every header of the INVITE, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.invite.headers
    }

    /// The SDP offer (empty for an offerless INVITE).
    pub fn sdp(&self) -> &str {
        &self.invite.body
    }

    /// The INVITE as received.
    pub fn request(&self) -> &SipMessage {
        &self.invite
    }

    /// The dialog (to read its events before answering).
    pub fn dialog(&self) -> &Dialog {
        &self.dialog
    }

    /// The next event (before answering: [`DialogEvent::Cancelled`]).
    pub async fn next_event(&self) -> Option<DialogEvent> {
        self.dialog.next_event().await
    }

    fn pending(&self, what: &'static str) -> Result<(Arc<Inner>, SipMessage)> {
        let ua = self.dialog.shared.ua()?;
        let invite = self
            .dialog
            .shared
            .lock()
            .incoming_invite
            .clone()
            .ok_or_else(|| {
                Error::invalid(
                    self.dialog.shared.vendor,
                    what,
                    "the call was already answered, rejected or cancelled",
                )
            })?;
        Ok((ua, invite))
    }

    /// Sends `180 Ringing`.
    pub fn ringing(&self) -> Result<()> {
        let (ua, invite) = self.pending("sip.ringing")?;
        let response =
            SipMessage::response_to_tagged(&invite, 180, "Ringing", &self.dialog.shared.local_tag)
                .with_header("Contact", format!("<{}>", ua.contact_uri(true)));
        ua.send(&response)
    }

    /// Answers with `200 OK` and `sdp`; the returned dialog is established (the ACK is
    /// awaited in the background, the 200 repeated until it comes).
    pub fn answer(&self, sdp: String) -> Result<Dialog> {
        let (ua, invite) = self.pending("sip.answer")?;
        let shared = &self.dialog.shared;
        let cseq = invite.cseq().map(|c| c.0).unwrap_or_default();
        let response = SipMessage::response_to_tagged(&invite, 200, "OK", &shared.local_tag)
            .with_header("Contact", format!("<{}>", ua.contact_uri(true)))
            .with_header("Allow", ALLOW)
            .with_header("Supported", "outbound")
            .with_header("User-Agent", ua.config.user_agent.clone())
            .with_body("application/sdp", sdp);
        {
            let mut state = shared.lock();
            if state.incoming_invite.take().is_none() {
                return Err(Error::invalid(
                    shared.vendor,
                    "sip.answer",
                    "the call was already answered, rejected or cancelled",
                ));
            }
            state.phase = Phase::Confirmed;
            state.awaiting_ack = Some(cseq);
        }
        ua.send(&response)?;
        shared.retransmit_2xx(&ua, response, cseq);
        Ok(self.dialog.clone())
    }

    /// Refuses the call with `status` (300..=699), `reason` phrase and extra `headers` (e.g.
    /// `486 Busy Here` with `X-Call-Dropped-Custom-Reason: ON-ANOTHER-CALL`).
    pub fn reject(&self, status: u16, reason: &str, headers: Vec<(String, String)>) -> Result<()> {
        check_final(self.dialog.shared.vendor, status)?;
        let (ua, _) = self.pending("sip.reject")?;
        let shared = &self.dialog.shared;
        let Some(invite) = shared.lock().incoming_invite.take() else {
            return Err(Error::invalid(
                shared.vendor,
                "sip.reject",
                "the call was already answered, rejected or cancelled",
            ));
        };
        let mut response =
            SipMessage::response_to_tagged(&invite, status, reason, &shared.local_tag);
        for (name, value) in headers {
            response.push_header(name, value);
        }
        shared.terminate(&ua, None);
        ua.send(&response)
    }
}
