//! Event fan-out: one bounded broadcast ring per session, one [`EventStream`] per subscriber.
//!
//! A subscriber that falls behind is never skipped silently: it receives
//! [`Event::Lagged`] with the number of missed events, then the stream goes on.
//!
//! # Memory
//!
//! Thousands of sessions live in one process, and most of them are idle, so the ring holds
//! only the events some subscriber has not read yet: an event leaves it as soon as every
//! subscriber that existed when it was emitted has read it. The capacity is a bound, not an
//! allocation: an idle session whose subscribers keep up holds no event at all, and a ring
//! that grew during a burst gives its memory back once it is empty again.
//!
//! # Semantics
//!
//! As with a `tokio::sync::broadcast` channel of the same capacity: an event emitted while
//! nobody is subscribed is dropped; a subscriber that is more than `capacity` events behind
//! the newest one loses the oldest ones it has not read and is told how many with
//! [`Event::Lagged`]; after every [`EventBus`] clone is dropped, a stream yields the events
//! it has not read yet and then ends.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use crate::{EngagementId, Event};

/// The default ring capacity: how far a subscriber may fall behind before it lags. Memory
/// is only used for events not read yet (see [`EventBus`]).
pub const DEFAULT_CAPACITY: usize = 64;

/// A ring that has grown past this many slots is shrunk back once it is empty.
const KEEP_SLOTS: usize = 8;

/// One event not yet read by every subscriber.
struct Slot {
    event: Event,
    /// How many subscribers still have to read it.
    unread: usize,
}

struct State {
    /// Events not read by every subscriber, oldest first.
    ring: VecDeque<Slot>,
    /// The sequence number of `ring[0]` (of the next event when the ring is empty).
    head: u64,
    /// Live [`EventBus`] clones.
    senders: usize,
    /// Live [`EventStream`]s.
    receivers: usize,
    /// Subscribers waiting for an event: (subscriber id, waker).
    waiting: Vec<(u64, Waker)>,
    /// The id of the next subscriber.
    next_id: u64,
}

impl State {
    /// The sequence number of the next event emitted.
    fn tail(&self) -> u64 {
        self.head + self.ring.len() as u64
    }

    /// Drops the oldest events that every subscriber has read.
    fn trim(&mut self) {
        while self.ring.front().is_some_and(|s| s.unread == 0) {
            self.ring.pop_front();
            self.head += 1;
        }
        if self.ring.is_empty() && self.ring.capacity() > KEEP_SLOTS {
            self.ring = VecDeque::new();
        }
    }
}

struct Shared {
    capacity: usize,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across every panic point (none holds it half-updated).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side: adapters emit events here. Clones share one ring; streams end once
/// every clone is dropped.
pub struct EventBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("EventBus")
            .field("capacity", &self.shared.capacity)
            .field("buffered", &st.ring.len())
            .field("subscribers", &st.receivers)
            .finish()
    }
}

impl Clone for EventBus {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        EventBus {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        let waiting = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            if st.senders > 0 {
                return;
            }
            std::mem::take(&mut st.waiting)
        };
        for (_, waker) in waiting {
            waker.wake();
        }
    }
}

impl EventBus {
    /// A bus on which a subscriber may fall `capacity` events behind (at least 1) before
    /// it lags. Nothing is allocated for the ring until events wait to be read.
    pub fn new(capacity: usize) -> Self {
        EventBus {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                state: Mutex::new(State {
                    ring: VecDeque::new(),
                    head: 0,
                    senders: 1,
                    receivers: 0,
                    waiting: Vec::new(),
                    next_id: 0,
                }),
            }),
        }
    }

    /// The capacity given to [`EventBus::new`].
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Sends `event` to every subscriber; no subscriber is not an error.
    pub fn emit(&self, event: Event) {
        let waiting = {
            let mut st = self.shared.lock();
            // Nobody listens now: later subscribers recover from the transcript.
            if st.receivers == 0 {
                return;
            }
            let unread = st.receivers;
            st.ring.push_back(Slot { event, unread });
            if st.ring.len() > self.shared.capacity {
                // The slowest subscribers lose the oldest event; they see `Lagged`.
                st.ring.pop_front();
                st.head += 1;
                st.trim();
            }
            std::mem::take(&mut st.waiting)
        };
        for (_, waker) in waiting {
            waker.wake();
        }
    }

    /// A new stream of every event emitted from now on.
    pub fn subscribe(&self) -> EventStream {
        self.stream(None)
    }

    /// A new stream of the events of one engagement (plus connection, session-wide and lag events).
    pub fn subscribe_engagement(&self, engagement: EngagementId) -> EventStream {
        self.stream(Some(engagement))
    }

    /// How many streams are subscribed.
    pub fn subscribers(&self) -> usize {
        self.shared.lock().receivers
    }

    /// How many events wait in the ring for a subscriber to read them.
    pub fn buffered(&self) -> usize {
        self.shared.lock().ring.len()
    }

    fn stream(&self, filter: Option<EngagementId>) -> EventStream {
        let mut st = self.shared.lock();
        st.receivers += 1;
        let id = st.next_id;
        st.next_id += 1;
        let next = st.tail();
        drop(st);
        EventStream {
            shared: Arc::clone(&self.shared),
            id,
            next,
            filter,
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

/// A stream of [`Event`]s for one subscriber. Ends when the session is dropped.
pub struct EventStream {
    shared: Arc<Shared>,
    id: u64,
    /// The sequence number of the next event to read.
    next: u64,
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
        let this = &mut *self;
        let shared = Arc::clone(&this.shared);
        let mut st = shared.lock();
        loop {
            if this.next < st.head {
                let missed = st.head - this.next;
                this.next = st.head;
                return Poll::Ready(Some(Event::Lagged { missed }));
            }
            let index = (this.next - st.head) as usize;
            let Some(slot) = st.ring.get_mut(index) else {
                if st.senders == 0 {
                    return Poll::Ready(None);
                }
                let id = this.id;
                match st.waiting.iter_mut().find(|(w, _)| *w == id) {
                    Some((_, waker)) => waker.clone_from(cx.waker()),
                    None => st.waiting.push((id, cx.waker().clone())),
                }
                return Poll::Pending;
            };
            slot.unread -= 1;
            let event = if this.wanted(&slot.event) {
                Some(slot.event.clone())
            } else {
                None
            };
            this.next += 1;
            if index == 0 {
                st.trim();
            }
            if let Some(event) = event {
                return Poll::Ready(Some(event));
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.receivers -= 1;
        let id = self.id;
        st.waiting.retain(|(w, _)| *w != id);
        let from = self.next.max(st.head);
        let to = st.tail();
        let head = st.head;
        for seq in from..to {
            if let Some(slot) = st.ring.get_mut((seq - head) as usize) {
                slot.unread -= 1;
            }
        }
        st.trim();
    }
}
