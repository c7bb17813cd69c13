//! The chat-proxy link: one reconnecting WebSocket per session (`cc-transport`), with the
//! `open` handshake on every connection (PROPOSED, see [`crate::wire::ws`]): the server's
//! `openstatus` re-attaches the browser session's chats and brings their transcripts, so what
//! happened while the socket was down is merged in (deduplicated by message id) and the
//! messages in flight at the drop are reconciled before the outbox sends again.

use std::sync::Arc;
use std::time::Duration;

use cc_core::{ConnectionState, Error, Event, Result, Vendor};
use cc_transport::{BackoffPolicy, TlsConfig, UrlProvider, WsClient, WsConfig, WsEvent, WsHandle};

use crate::client::Inner;
use crate::wire::{Call, Push};

const V: Vendor = Vendor::Tetherfi;

/// The chat-proxy connection of one session.
pub(crate) struct WsLink {
    handle: WsHandle,
}

impl WsLink {
    /// Writes a call's frame on the current connection.
    pub(crate) async fn send(&self, call: &Call) -> Result<()> {
        let frame = crate::wire::ws::encode_call(call).ok_or_else(|| {
            Error::invalid(V, "call", format!("{call:?} has no chat-proxy frame"))
        })?;
        self.handle.send_now(frame.to_string()).await
    }

    pub(crate) async fn close(&self) {
        self.handle.close().await;
    }
}

/// Connects, waits for the first `openstatus`, and keeps the event loop running.
pub(crate) async fn start(inner: &Arc<Inner>, tls: TlsConfig) -> Result<()> {
    let cfg = &inner.cfg;
    let mut wc = WsConfig::new(V, UrlProvider::fixed(cfg.ws_endpoint()?));
    wc.tls = tls;
    wc.backoff = BackoffPolicy::fixed(cfg.poll_retry()).with_max_attempts(Some(cfg.max_retries));
    wc.connect_timeout = cfg.request_timeout();
    let (handle, mut events) = WsClient::connect(wc);
    let _ = inner.link.set(crate::client::Link::Ws(WsLink {
        handle: handle.clone(),
    }));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let me = inner.clone();
    inner.spawn(async move {
        let mut first = Some(first_tx);
        let mut had_chats = false;
        while let Some(ev) = events.recv().await {
            match ev {
                WsEvent::Connected { connection, .. } => {
                    // The handshake: `open` with the browser-session token, if any.
                    let token = me.lock().ws_token.clone();
                    let open = Call::Open {
                        cookie_enabled: true,
                        token,
                        page: Some(me.page_id.clone()),
                    };
                    if let Err(e) = me.call(&open).await {
                        tracing::debug!(vendor = %V, error = %e, "open handshake failed");
                        continue;
                    }
                    handle.ready(connection);
                }
                WsEvent::Text(text) => {
                    let push = crate::wire::ws::decode_push(&text);
                    let mut st = me.lock();
                    if let Ok(Push::OpenSuccess { token, .. } | Push::OpenFailed { token, .. }) =
                        &push
                    {
                        if token.is_some() {
                            st.ws_token.clone_from(token);
                        }
                        let lost = matches!(&push, Ok(Push::OpenFailed { .. })) && had_chats;
                        drop(st);
                        if lost {
                            me.session_lost();
                        }
                        me.set_online(true, 0, Duration::ZERO);
                        st = me.lock();
                        if let Some(tx) = first.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    me.on_pushes(&mut st, vec![push]);
                    had_chats = st
                        .engine
                        .chats()
                        .iter()
                        .any(|c| c.state != cc_core::EngagementState::Ended);
                }
                WsEvent::Reconnecting { attempt, delay } => me.set_online(false, attempt, delay),
                WsEvent::Disconnected { .. } => {
                    let mut st = me.lock();
                    if st.engine.is_online() {
                        let outs = st.engine.set_online(false, 1, cfg_retry(&me));
                        me.apply(&mut st, outs);
                    }
                }
                WsEvent::GaveUp { reason, .. } => {
                    me.give_up(&reason.to_string());
                    me.bus
                        .emit(Event::Connection(ConnectionState::Disconnected {
                            reason: Arc::from(reason.to_string()),
                        }));
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Err(Error::transport(V, "connect", reason.to_string())));
                    }
                    return;
                }
                WsEvent::Closed => return,
                WsEvent::Connecting { .. } | WsEvent::Binary(_) => {}
            }
        }
    });
    match tokio::time::timeout(cfg.request_timeout(), first_rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(Error::closed(V, "session")),
        Err(_) => Err(Error::Timeout {
            vendor: V,
            operation: "open",
            after: cfg.request_timeout(),
        }),
    }
}

fn cfg_retry(inner: &Inner) -> Duration {
    inner.cfg.poll_retry()
}
