//! Event fan-out: one bounded broadcast ring per session, one [`EventStream`] per subscriber.
//!
//! A subscriber that falls behind is never skipped silently: it receives
//! [`Event::Lagged`] with the number of missed events, then the stream goes on.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::{EngagementId, Event};

/// The default ring capacity: small, because thousands of sessions live in one process.
pub const DEFAULT_CAPACITY: usize = 64;

/// The sending side: adapters emit events here.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    /// A bus whose ring holds `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventBus { tx }
    }

    /// Sends `event` to every subscriber; no subscriber is not an error.
    pub fn emit(&self, event: Event) {
        // Err only means nobody listens now; later subscribers recover from the transcript.
        let _ = self.tx.send(event);
    }

    /// A new stream of every event emitted from now on.
    pub fn subscribe(&self) -> EventStream {
        EventStream::new(self.tx.subscribe(), None)
    }

    /// A new stream of the events of one engagement (plus connection, session-wide and lag events).
    pub fn subscribe_engagement(&self, engagement: EngagementId) -> EventStream {
        EventStream::new(self.tx.subscribe(), Some(engagement))
    }

    /// How many streams are subscribed.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

/// A stream of [`Event`]s for one subscriber. Ends when the session is dropped.
pub struct EventStream {
    inner: BroadcastStream<Event>,
    filter: Option<EngagementId>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    fn new(rx: broadcast::Receiver<Event>, filter: Option<EngagementId>) -> Self {
        EventStream {
            inner: BroadcastStream::new(rx),
            filter,
        }
    }

    fn wanted(&self, event: &Event) -> bool {
        match (&self.filter, event.engagement()) {
            (Some(want), Some(got)) => want == got,
            _ => true,
        }
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(ev))) => {
                    if self.wanted(&ev) {
                        return Poll::Ready(Some(ev));
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                    return Poll::Ready(Some(Event::Lagged { missed }));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
