//! Waiting for events, with timeouts that say what was seen.
//!
//! [`Events`] records every event of one stream from the moment it is created (a
//! background task drains the stream, so a slow test never makes the session's ring
//! lag). [`Events::expect`] waits for the next event that matches, after the last one
//! matched: scenarios read as a sequence of expectations, in order. Every wait has a
//! timeout, and a failure names the step and lists the events seen so far.
//!
//! [`expect_event`] is the same wait over any stream, for tests that hold a bare stream.

use std::fmt::Write as _;
use std::time::Duration;

use cc_core::{Content, Event};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Failure;

/// Waits up to `timeout` for the first event from `stream` that `pred` accepts.
///
/// On timeout, or when the stream ends, the error names `step` and lists every event
/// seen meanwhile.
pub async fn expect_event<S, P>(
    stream: &mut S,
    step: &str,
    timeout: Duration,
    mut pred: P,
) -> Result<Event, Failure>
where
    S: Stream<Item = Event> + Unpin,
    P: FnMut(&Event) -> bool,
{
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(ev)) if pred(&ev) => return Ok(ev),
            Ok(Some(ev)) => seen.push(ev),
            Ok(None) => {
                return Err(Failure::new(format!(
                    "step `{step}`: the event stream ended before a matching event\n{}",
                    render(&seen, 0)
                )));
            }
            Err(_) => {
                return Err(Failure::new(format!(
                    "step `{step}`: no matching event within {timeout:?}\n{}",
                    render(&seen, 0)
                )));
            }
        }
    }
}

/// A recorder of one event stream, with ordered expectations.
#[derive(Debug)]
pub struct Events {
    label: String,
    rx: mpsc::UnboundedReceiver<Event>,
    log: Vec<Event>,
    cursor: usize,
    timeout: Duration,
}

impl Events {
    /// Records `stream` from now on. `label` names the stream in failures (`session`,
    /// `reopened session`); `timeout` is the default for [`Events::expect`]. Spawns a task
    /// on the current tokio runtime.
    pub fn record<S>(label: impl Into<String>, stream: S, timeout: Duration) -> Events
    where
        S: Stream<Item = Event> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut stream = stream;
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        Events {
            label: label.into(),
            rx,
            log: Vec::new(),
            cursor: 0,
            timeout,
        }
    }

    /// Waits for the next event after the last matched one that `pred` accepts, with the
    /// default timeout.
    pub async fn expect<P>(&mut self, step: &str, pred: P) -> Result<Event, Failure>
    where
        P: FnMut(&Event) -> bool,
    {
        self.expect_within(step, self.timeout, pred).await
    }

    /// [`Events::expect`] with an explicit timeout.
    pub async fn expect_within<P>(
        &mut self,
        step: &str,
        timeout: Duration,
        mut pred: P,
    ) -> Result<Event, Failure>
    where
        P: FnMut(&Event) -> bool,
    {
        if let Some(i) = self.log[self.cursor..].iter().position(&mut pred) {
            self.cursor += i + 1;
            return Ok(self.log[self.cursor - 1].clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => {
                    let hit = pred(&ev);
                    self.log.push(ev);
                    if hit {
                        self.cursor = self.log.len();
                        return Ok(self.log[self.cursor - 1].clone());
                    }
                }
                Ok(None) => {
                    return Err(
                        self.failure(step, "the event stream ended before a matching event")
                    );
                }
                Err(_) => {
                    return Err(
                        self.failure(step, &format!("no matching event within {timeout:?}"))
                    );
                }
            }
        }
    }

    /// Takes whatever arrived so far into the log without waiting.
    pub fn drain(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            self.log.push(ev);
        }
    }

    /// Every event recorded so far (after [`Events::drain`] or an expectation).
    pub fn seen(&self) -> &[Event] {
        &self.log
    }

    /// A failure for `step` that lists the events seen so far.
    pub fn failure(&self, step: &str, what: &str) -> Failure {
        Failure::new(format!(
            "step `{step}`: {what} (on the {} events)\n{}",
            self.label,
            render(&self.log, self.cursor)
        ))
    }
}

/// Renders events one a line, marking those already matched.
fn render(events: &[Event], cursor: usize) -> String {
    if events.is_empty() {
        return "  events seen: none".to_owned();
    }
    let mut out = String::from("  events seen (* = before the last match):");
    for (i, ev) in events.iter().enumerate() {
        let mark = if i < cursor { '*' } else { ' ' };
        let _ = write!(out, "\n  {mark} {}", describe(ev));
    }
    out
}

/// A one-line description of an event, for failure messages.
pub fn describe(ev: &Event) -> String {
    let who = |p: &cc_core::Participant| {
        format!(
            "{:?}{}",
            p.role,
            p.display_name
                .as_deref()
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default()
        )
    };
    let content = |c: &Content| match c {
        Content::Text(t) => format!("{t:?}"),
        Content::File(a) => format!("file {:?} ({})", a.name, a.mime_type),
        Content::Rich(_) => "rich content".to_owned(),
        Content::Notice(n) => format!("notice {:?}", n.kind),
    };
    match ev {
        Event::MessageReceived(m) => format!(
            "MessageReceived {} from {} (id {:?})",
            content(&m.content),
            who(&m.sender),
            m.id.as_ref().map(|i| i.as_str())
        ),
        Event::MessageSent(m) => format!(
            "MessageSent {} (id {:?}, client id {:?})",
            content(&m.content),
            m.id.as_ref().map(|i| i.as_str()),
            m.client_id.map(|c| c.to_string())
        ),
        Event::ParticipantJoined { participant, .. } => {
            format!("ParticipantJoined {}", who(participant))
        }
        Event::ParticipantLeft { participant, .. } => {
            format!("ParticipantLeft {}", who(participant))
        }
        Event::Typing {
            participant, on, ..
        } => format!("Typing {} on={on}", who(participant)),
        Event::Error(e) => format!("Error ({:?}): {e}", e.kind()),
        Event::MessageFailed {
            client_id, error, ..
        } => format!("MessageFailed {client_id}: {error}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_core::{ConnectionState, EventBus};

    fn connected() -> Event {
        Event::Connection(ConnectionState::Connected)
    }

    #[tokio::test]
    async fn expect_event_returns_the_first_match() {
        let bus = EventBus::default();
        let mut stream = bus.subscribe();
        bus.emit(Event::TokenExpired);
        bus.emit(connected());
        let ev = expect_event(&mut stream, "connect", Duration::from_secs(1), |e| {
            matches!(e, Event::Connection(_))
        })
        .await
        .unwrap();
        assert!(matches!(ev, Event::Connection(ConnectionState::Connected)));
    }

    #[tokio::test(start_paused = true)]
    async fn expect_event_times_out_naming_the_step_and_what_was_seen() {
        let bus = EventBus::default();
        let mut stream = bus.subscribe();
        bus.emit(Event::TokenExpired);
        let err = expect_event(&mut stream, "agent joins", Duration::from_secs(2), |e| {
            matches!(e, Event::ParticipantJoined { .. })
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("step `agent joins`"), "{err}");
        assert!(err.contains("within 2s"), "{err}");
        assert!(err.contains("TokenExpired"), "{err}");
    }

    #[tokio::test]
    async fn expect_event_reports_a_closed_stream() {
        let bus = EventBus::default();
        let mut stream = bus.subscribe();
        drop(bus);
        let err = expect_event(&mut stream, "wait", Duration::from_secs(1), |_| true)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream ended"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn events_expectations_are_ordered() {
        let bus = EventBus::default();
        let mut events = Events::record("session", bus.subscribe(), Duration::from_secs(1));
        bus.emit(connected());
        bus.emit(Event::TokenExpired);
        bus.emit(connected());
        // The first Connection, then TokenExpired after it, then the second Connection.
        events
            .expect("first", |e| matches!(e, Event::Connection(_)))
            .await
            .unwrap();
        events
            .expect("token", |e| matches!(e, Event::TokenExpired))
            .await
            .unwrap();
        events
            .expect("second", |e| matches!(e, Event::Connection(_)))
            .await
            .unwrap();
        // No third Connection: TokenExpired is behind the cursor, so it cannot match again.
        let err = events
            .expect("again", |e| matches!(e, Event::TokenExpired))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("step `again`"), "{err}");
        assert!(err.contains("session events"), "{err}");
        assert!(err.contains("* TokenExpired"), "{err}");
        assert_eq!(events.seen().len(), 3);
    }

    #[tokio::test]
    async fn events_finds_an_event_buffered_before_the_wait() {
        let bus = EventBus::default();
        let mut events = Events::record("session", bus.subscribe(), Duration::from_secs(1));
        bus.emit(Event::TokenExpired);
        bus.emit(connected());
        events
            .expect("connected", |e| matches!(e, Event::Connection(_)))
            .await
            .unwrap();
        // TokenExpired was skipped over, so it is before the cursor now.
        assert!(
            events
                .expect_within("token", Duration::from_millis(50), |e| matches!(
                    e,
                    Event::TokenExpired
                ))
                .await
                .is_err()
        );
    }

    #[test]
    fn describe_is_one_line() {
        let ev = Event::error(cc_core::Error::protocol(
            cc_core::Vendor::Genesys,
            "frame",
            "bad json",
        ));
        let d = describe(&ev);
        assert!(d.starts_with("Error (Protocol)"), "{d}");
        assert!(!d.contains('\n'));
    }
}
