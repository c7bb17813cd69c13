//! The outbox and transcript driven together the way an adapter drives them, against a
//! scripted vendor that loses the connection at the worst moments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cc_chat::{
    Content, DeliveryState, EchoMatch, EngagementId, Message, MessageId, Outbox, OutboxConfig,
    Participant, Poll, Rate, Role, Timestamp, Transcript, Upsert,
};
use cc_core::Vendor;

/// A vendor: stores what reaches it, echoes it back while the link is up.
struct Vendor1 {
    stored: Vec<Message>,
    /// Echoes not yet delivered to the client.
    in_transit: VecDeque<Message>,
    /// Writes the link loses before they reach the vendor.
    lose_next_writes: usize,
    clock: i64,
}

impl Vendor1 {
    fn new() -> Self {
        Vendor1 {
            stored: Vec::new(),
            in_transit: VecDeque::new(),
            lose_next_writes: 0,
            clock: 50_000,
        }
    }

    /// A frame the client wrote. The wire carries no client id (content matching).
    fn receive(&mut self, m: &Message) {
        if self.lose_next_writes > 0 {
            self.lose_next_writes -= 1;
            return;
        }
        self.clock += 100;
        let stored = Message {
            id: Some(MessageId::from(format!("v{}", self.stored.len() + 1))),
            client_id: None,
            server_time: Some(Timestamp(self.clock)),
            state: DeliveryState::Sent,
            sender: Participant::new(Role::Customer).with_id("guest"),
            ..m.clone()
        };
        self.stored.push(stored.clone());
        self.in_transit.push_back(stored);
    }

    fn agent_says(&mut self, text: &str) {
        self.clock += 100;
        let m = Message {
            id: Some(MessageId::from(format!("v{}", self.stored.len() + 1))),
            client_id: None,
            engagement: EngagementId::from("e-1"),
            sender: Participant::new(Role::Agent),
            content: Content::text(text),
            server_time: Some(Timestamp(self.clock)),
            local_time: Timestamp(0),
            state: DeliveryState::Sent,
            hidden: false,
        };
        self.stored.push(m.clone());
        self.in_transit.push_back(m);
    }

    /// The link drops: whatever was in transit is lost.
    fn drop_link(&mut self) {
        self.in_transit.clear();
    }

    fn texts_from(&self, role: Role) -> Vec<String> {
        self.stored
            .iter()
            .filter(|m| m.sender.role == role)
            .map(|m| m.content.as_text().unwrap().to_owned())
            .collect()
    }
}

/// The adapter's engine: outbox + transcript.
struct Engine {
    outbox: Outbox,
    transcript: Transcript,
    sent_events: usize,
    received_events: usize,
}

impl Engine {
    fn new(config: OutboxConfig) -> Self {
        Engine {
            outbox: Outbox::new(
                Vendor::Genesys,
                EngagementId::from("e-1"),
                Participant::new(Role::Customer),
                config,
            ),
            transcript: Transcript::new(),
            sent_events: 0,
            received_events: 0,
        }
    }

    fn send(&mut self, text: &str, now: Instant) {
        let m = self
            .outbox
            .push(Content::text(text), Timestamp(50_000), now);
        assert_eq!(self.transcript.upsert(m), Upsert::Inserted);
    }

    /// Writes whatever the outbox allows at `now`; returns the next wake-up, if any.
    fn flush(&mut self, vendor: &mut Vendor1, now: Instant) -> Option<Instant> {
        loop {
            match self.outbox.poll(now) {
                Poll::Send(out) => {
                    vendor.receive(&out.message);
                    self.outbox.on_written(out.client_id(), now);
                }
                Poll::WaitUntil(t) => return Some(t),
                Poll::Reconcile => {
                    // After reconnect: read the server's history, settle, go on.
                    let report = self.outbox.reconcile(&vendor.stored, now);
                    assert!(report.failed.is_empty());
                    for m in report.confirmed {
                        self.transcript.upsert(m);
                        self.sent_events += 1;
                    }
                    for m in &vendor.stored {
                        if self.transcript.upsert(m.clone()) == Upsert::Inserted {
                            self.received_events += 1;
                        }
                    }
                }
                Poll::Idle => return None,
            }
        }
    }

    /// Reads the frames the vendor pushed.
    fn read(&mut self, vendor: &mut Vendor1, now: Instant) {
        while let Some(frame) = vendor.in_transit.pop_front() {
            if frame.sender.role == Role::Customer {
                match self.outbox.on_echo(&frame, now) {
                    EchoMatch::Confirmed(m) => {
                        self.transcript.upsert(m);
                        self.sent_events += 1;
                    }
                    EchoMatch::AlreadyConfirmed(m) => {
                        self.transcript.upsert(m);
                    }
                    EchoMatch::Unmatched => {
                        self.transcript.upsert(frame);
                    }
                }
            } else if self.transcript.upsert(frame) == Upsert::Inserted {
                self.received_events += 1;
            }
        }
    }
}

#[test]
fn nothing_lost_nothing_twice_across_reconnects() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut vendor = Vendor1::new();
    let mut engine = Engine::new(OutboxConfig::default());

    // Written while disconnected.
    engine.send("one", t0);
    engine.send("two", t0);
    engine.send("three", t0);
    assert_eq!(engine.flush(&mut vendor, t0), None);
    assert!(vendor.stored.is_empty());

    // Connected: all three go; "one" is echoed; then the link drops with the echoes of
    // "two" in transit and the write of "three" lost on the way.
    engine.outbox.on_connected();
    vendor.lose_next_writes = 0;
    let mut writes = 0;
    while let Poll::Send(out) = engine.outbox.poll(t0) {
        writes += 1;
        if writes == 3 {
            vendor.lose_next_writes = 1;
        }
        vendor.receive(&out.message);
        engine.outbox.on_written(out.client_id(), t0);
    }
    let echo_one = vendor.in_transit.pop_front().unwrap();
    vendor.in_transit.clear();
    vendor.in_transit.push_back(echo_one);
    engine.read(&mut vendor, t0 + ms(50));
    vendor.agent_says("hello, how can I help?");
    vendor.drop_link();
    engine.outbox.on_disconnected();

    // Offline again: one more.
    engine.send("four", t0 + ms(100));

    // Reconnect: reconcile against history, then resend what the server lacks.
    engine.outbox.on_connected();
    engine.flush(&mut vendor, t0 + ms(2_000));
    engine.read(&mut vendor, t0 + ms(2_100));
    assert_eq!(engine.outbox.pending_len(), 0);

    assert_eq!(
        vendor.texts_from(Role::Customer),
        ["one", "two", "three", "four"],
        "each message reached the vendor exactly once, in order"
    );
    let shown: Vec<_> = engine
        .transcript
        .visible()
        .into_iter()
        .map(|m| (m.content.as_text().unwrap().to_owned(), m.state))
        .collect();
    assert_eq!(
        shown,
        [
            ("one".to_owned(), DeliveryState::Sent),
            ("two".to_owned(), DeliveryState::Sent),
            ("hello, how can I help?".to_owned(), DeliveryState::Sent),
            ("three".to_owned(), DeliveryState::Sent),
            ("four".to_owned(), DeliveryState::Sent),
        ],
        "each message shown once, in server order"
    );
    assert_eq!(engine.sent_events, 4);
    assert_eq!(engine.received_events, 1);
    assert!(engine.transcript.iter().all(|m| m.id.is_some()));
}

#[test]
fn paced_burst_after_reconnect_keeps_order() {
    let t0 = Instant::now();
    let mut vendor = Vendor1::new();
    let mut engine = Engine::new(OutboxConfig {
        rate: Some(Rate::per_second(2)),
        ..OutboxConfig::default()
    });
    for i in 0..7 {
        engine.send(&format!("m{i}"), t0);
    }
    engine.outbox.on_connected();
    let mut now = t0;
    let mut wakeups = 0;
    while let Some(next) = engine.flush(&mut vendor, now) {
        engine.read(&mut vendor, now);
        now = next;
        wakeups += 1;
        assert!(wakeups < 20);
    }
    engine.read(&mut vendor, now);
    assert_eq!(
        vendor.texts_from(Role::Customer),
        (0..7).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    // 2 at once, then one every 500 ms.
    assert_eq!(now - t0, Duration::from_millis(2_500));
    assert_eq!(engine.transcript.len(), 7);
    assert_eq!(engine.sent_events, 7);
}
