//! The transcript of one engagement: every message once, in order.
//!
//! # The machinery
//!
//! Messages are kept sorted by a key `(sort time, arrival sequence)`: the sort time is the
//! server's time when it gave one, else the local time ([`Message::sort_time`]); the arrival
//! sequence is a counter given when a message is first inserted, so messages with equal
//! times keep the order they arrived in, and the order never depends on anything else.
//! Inserting a message newer than the last one (the common live case) is a push; an older
//! one (history backfill) is a binary search and an insert.
//!
//! [`Transcript::upsert`] is the one way in. It finds the message the new one is a copy of:
//!
//! 1. by vendor id ([`Message::id`]): a message seen again (history after reconnect, a
//!    redelivered frame);
//! 2. by client id ([`Message::client_id`]): our own outbound message and its echo or ack,
//!    which first had no vendor id;
//! 3. for messages with neither id: the same sender role, content and server time.
//!
//! A copy is merged into the existing entry (ids and server time filled in, content and
//! sender from the newer copy, the delivery state only moved forward, hidden if either copy
//! is hidden) and moved if its sort time changed; the [`Upsert`] result tells the adapter
//! whether to emit an event. Delivery states change with [`Transcript::set_state`], by
//! vendor id or client id, never backwards ([`crate::advance_state`]).
//!
//! A receipt can overtake its message (a read receipt before the echo it refers to): a
//! state for an unknown vendor id is held (the last [`EARLY_STATES`] of them) and applied
//! when the message arrives.
//!
//! Hidden (filtered) messages are kept, and dedupe like the others, but only
//! [`Transcript::messages`] shows them; [`Transcript::visible`] leaves them out.

use std::collections::{HashMap, VecDeque};

use cc_core::{ClientMessageId, DeliveryState, HistoryPage, Message, MessageId, Timestamp};

use crate::advance_state;

/// What [`Transcript::upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    /// A message not seen before: emit it.
    Inserted,
    /// A copy of a known message that changed it (ids, time, content or state).
    Updated,
    /// A copy that brought nothing new: drop it.
    Unchanged,
}

/// Counts of what [`Transcript::merge_page`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// New messages.
    pub inserted: usize,
    /// Known messages that changed.
    pub updated: usize,
    /// Known messages that did not change.
    pub unchanged: usize,
}

type Key = (Timestamp, u64);

/// How many delivery states for not-yet-seen messages a transcript holds.
pub const EARLY_STATES: usize = 64;

#[derive(Clone, Debug)]
struct Entry {
    key: Key,
    message: Message,
}

/// The ordered, deduplicated messages of one engagement; see the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    entries: Vec<Entry>,
    by_id: HashMap<MessageId, Key>,
    by_client: HashMap<ClientMessageId, Key>,
    next_seq: u64,
    /// States that arrived before their message, oldest first.
    early: VecDeque<(MessageId, DeliveryState)>,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Transcript {
        Transcript::default()
    }

    /// How many messages, hidden ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn pos(&self, key: Key) -> usize {
        self.entries
            .binary_search_by_key(&key, |e| e.key)
            .expect("indexed keys are present")
    }

    fn index(&mut self, key: Key) {
        let m = &self.entries[self.pos(key)].message;
        if let Some(id) = &m.id {
            self.by_id.insert(id.clone(), key);
        }
        if let Some(cid) = m.client_id {
            self.by_client.insert(cid, key);
        }
    }

    fn unindex(&mut self, message: &Message, key: Key) {
        if let Some(id) = &message.id
            && self.by_id.get(id) == Some(&key)
        {
            self.by_id.remove(id);
        }
        if let Some(cid) = message.client_id
            && self.by_client.get(&cid) == Some(&key)
        {
            self.by_client.remove(&cid);
        }
    }

    fn insert_entry(&mut self, key: Key, message: Message) {
        let at = match self.entries.last() {
            Some(last) if last.key < key => self.entries.len(),
            None => 0,
            _ => self
                .entries
                .binary_search_by_key(&key, |e| e.key)
                .unwrap_or_else(|i| i),
        };
        self.entries.insert(at, Entry { key, message });
        self.index(key);
    }

    fn remove_entry(&mut self, key: Key) -> Message {
        let entry = self.entries.remove(self.pos(key));
        self.unindex(&entry.message, key);
        entry.message
    }

    /// Puts the message of `key` back in order after its sort time may have changed.
    fn reposition(&mut self, key: Key) -> Key {
        let i = self.pos(key);
        let t = self.entries[i].message.sort_time();
        if t == key.0 {
            return key;
        }
        let message = self.remove_entry(key);
        let new_key = (t, key.1);
        self.insert_entry(new_key, message);
        new_key
    }

    /// The key of a message with neither id that `m` repeats.
    fn find_anonymous(&self, m: &Message) -> Option<Key> {
        let t = m.server_time?;
        let start = self.entries.partition_point(|e| e.key.0 < t);
        self.entries[start..]
            .iter()
            .take_while(|e| e.key.0 == t)
            .find(|e| {
                let x = &e.message;
                x.id.is_none()
                    && x.client_id.is_none()
                    && x.server_time == Some(t)
                    && x.sender.role == m.sender.role
                    && x.content == m.content
            })
            .map(|e| e.key)
    }

    /// Inserts `message`, or merges it into the message it is a copy of; see the
    /// [module docs](self).
    pub fn upsert(&mut self, mut message: Message) -> Upsert {
        let by_id = message
            .id
            .as_ref()
            .and_then(|id| self.by_id.get(id).copied());
        let mut by_client = message
            .client_id
            .and_then(|cid| self.by_client.get(&cid).copied());
        if let Some(k) = by_client {
            // The same client id with another vendor id is not the same message.
            let existing = &self.entries[self.pos(k)].message;
            if let (Some(a), Some(b)) = (&existing.id, &message.id)
                && a != b
            {
                by_client = None;
                message.client_id = None;
            }
        }
        let mut folded = false;
        let target = match (by_id, by_client) {
            (Some(a), Some(b)) if a != b => {
                // Two entries turn out to be one message (an echo without our client id
                // arrived before the ack): fold the later one into the earlier one.
                folded = true;
                let (keep, fold) = if a.1 < b.1 { (a, b) } else { (b, a) };
                let folded = self.remove_entry(fold);
                Some(self.merge_into(keep, folded))
            }
            (Some(a), _) => Some(a),
            (None, Some(b)) => Some(b),
            (None, None) if message.id.is_none() && message.client_id.is_none() => {
                self.find_anonymous(&message)
            }
            (None, None) => None,
        };
        match target {
            Some(key) => {
                let before = self.entries[self.pos(key)].message.clone();
                let key = self.merge_into(key, message);
                if folded || self.entries[self.pos(key)].message != before {
                    Upsert::Updated
                } else {
                    Upsert::Unchanged
                }
            }
            None => {
                if let Some(id) = &message.id
                    && let Some(i) = self.early.iter().position(|(e, _)| e == id)
                {
                    let (_, state) = self.early.remove(i).expect("index in range");
                    advance_state(&mut message.state, state);
                }
                let key = (message.sort_time(), self.next_seq);
                self.next_seq += 1;
                self.insert_entry(key, message);
                Upsert::Inserted
            }
        }
    }

    /// Merges `new` into the entry of `key`; returns the entry's key afterwards.
    fn merge_into(&mut self, key: Key, new: Message) -> Key {
        let i = self.pos(key);
        let old = self.entries[i].message.clone();
        self.unindex(&old, key);
        let m = &mut self.entries[i].message;
        if m.id.is_none() {
            m.id = new.id;
        }
        if m.client_id.is_none() {
            m.client_id = new.client_id;
        }
        if new.server_time.is_some() {
            m.server_time = new.server_time;
        }
        m.content = new.content;
        if new.sender.id.is_some() {
            m.sender.id = new.sender.id;
        }
        if new.sender.display_name.is_some() {
            m.sender.display_name = new.sender.display_name;
        }
        m.sender.role = new.sender.role;
        advance_state(&mut m.state, new.state);
        m.hidden |= new.hidden;
        self.index(key);
        self.reposition(key)
    }

    /// Merges every message of a history page; returns what happened.
    pub fn merge_page(&mut self, page: &HistoryPage) -> MergeReport {
        let mut report = MergeReport::default();
        for m in &page.messages {
            match self.upsert(m.clone()) {
                Upsert::Inserted => report.inserted += 1,
                Upsert::Updated => report.updated += 1,
                Upsert::Unchanged => report.unchanged += 1,
            }
        }
        report
    }

    /// Moves a message's delivery state forward, found by vendor id or else by client id.
    /// Returns the updated message when the state changed; `None` when the state would go
    /// backwards (a late `Delivered` after `Read`) or the message is unknown. A state for an
    /// unknown vendor id is held and applied when that message arrives.
    pub fn set_state(
        &mut self,
        id: Option<&MessageId>,
        client_id: Option<ClientMessageId>,
        state: DeliveryState,
    ) -> Option<Message> {
        let key = id
            .and_then(|id| self.by_id.get(id).copied())
            .or_else(|| client_id.and_then(|c| self.by_client.get(&c).copied()));
        let Some(key) = key else {
            if let Some(id) = id {
                self.hold_early(id, state);
            }
            return None;
        };
        let i = self.pos(key);
        let m = &mut self.entries[i].message;
        advance_state(&mut m.state, state).then(|| m.clone())
    }

    fn hold_early(&mut self, id: &MessageId, state: DeliveryState) {
        if let Some((_, held)) = self.early.iter_mut().find(|(e, _)| e == id) {
            advance_state(held, state);
            return;
        }
        if self.early.len() == EARLY_STATES {
            self.early.pop_front();
        }
        self.early.push_back((id.clone(), state));
    }

    /// The message with that vendor id.
    pub fn get(&self, id: &MessageId) -> Option<&Message> {
        let key = self.by_id.get(id)?;
        Some(&self.entries[self.pos(*key)].message)
    }

    /// The message with that client id.
    pub fn get_by_client_id(&self, client_id: ClientMessageId) -> Option<&Message> {
        let key = self.by_client.get(&client_id)?;
        Some(&self.entries[self.pos(*key)].message)
    }

    /// Whether a message with that vendor id is known.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Every message in order, hidden ones included, without copying.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Message> + ExactSizeIterator {
        self.entries.iter().map(|e| &e.message)
    }

    /// A snapshot of every message in order, hidden ones included.
    pub fn messages(&self) -> Vec<Message> {
        self.iter().cloned().collect()
    }

    /// A snapshot of the visible messages in order (hidden ones left out).
    pub fn visible(&self) -> Vec<Message> {
        self.iter().filter(|m| !m.hidden).cloned().collect()
    }

    /// The newest message, hidden ones included.
    pub fn last(&self) -> Option<&Message> {
        self.entries.last().map(|e| &e.message)
    }

    /// The oldest message with a vendor id (a cursor for older history).
    pub fn oldest_id(&self) -> Option<&MessageId> {
        self.iter().find_map(|m| m.id.as_ref())
    }

    /// The newest message with a vendor id (a cursor for newer history).
    pub fn newest_id(&self) -> Option<&MessageId> {
        self.iter().rev().find_map(|m| m.id.as_ref())
    }
}

#[cfg(test)]
mod tests;
