//! A bounded memory of ids seen, for inbound events a vendor may deliver twice.
//!
//! # The machinery
//!
//! Messages are deduplicated by the [`crate::Transcript`]. Other inbound events (typing
//! notices, receipts, member changes) carry an event id on some vendors, and arrive again
//! after a reconnect or a redelivery. [`IncomingDedup`] remembers the last `capacity` ids
//! and says whether one is new; the oldest is forgotten first, so memory stays bounded for
//! sessions that run for hours.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

use cc_core::MessageId;

/// The last `capacity` ids seen; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct IncomingDedup<K = MessageId> {
    capacity: usize,
    order: VecDeque<K>,
    seen: HashSet<K>,
}

impl<K: Hash + Eq + Clone> IncomingDedup<K> {
    /// Remembers up to `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        IncomingDedup {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Records `id`; returns whether it is new (handle the event) or a repeat (drop it).
    pub fn insert(&mut self, id: K) -> bool {
        if self.seen.contains(&id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(id.clone());
        self.seen.insert(id);
        true
    }

    /// Whether `id` was seen (and not yet forgotten).
    pub fn contains(&self, id: &K) -> bool {
        self.seen.contains(id)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.order.clear();
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_then_repeat() {
        let mut d = IncomingDedup::new(10);
        assert!(d.is_empty());
        assert!(d.insert(MessageId::from("a")));
        assert!(!d.insert(MessageId::from("a")));
        assert!(d.insert(MessageId::from("b")));
        assert!(d.contains(&MessageId::from("a")));
        assert_eq!(d.len(), 2);
        d.clear();
        assert!(d.insert(MessageId::from("a")));
    }

    #[test]
    fn oldest_forgotten_first() {
        let mut d: IncomingDedup<u32> = IncomingDedup::new(3);
        for i in 0..3 {
            assert!(d.insert(i));
        }
        assert!(d.insert(3));
        assert_eq!(d.len(), 3);
        assert!(!d.contains(&0));
        assert!(!d.insert(1));
        assert!(d.insert(0), "forgotten, so new again");
        assert!(!d.contains(&1));
    }
}
