//! The typing debouncer: keystrokes in, rate-limited typing signals out.
//!
//! # The machinery
//!
//! Apps report every keystroke; vendors want a typing-start now and then and, where they
//! have one, a typing-stop when the user pauses. The [`TypingDebouncer`] sits between:
//!
//! - [`TypingDebouncer::on_input`] says whether to send typing-start now: on the first
//!   keystroke, then again at most once every [`TypingConfig::resend_every`] while the user
//!   keeps typing (vendors show the indicator for a few seconds after each start, so it must
//!   be refreshed);
//! - [`TypingDebouncer::poll`] says whether to send typing-stop, once the user has been idle
//!   for [`TypingConfig::idle_after`]; for vendors without a stop signal
//!   ([`TypingConfig::send_stop`] false) it never does, but still ends the burst so the next
//!   keystroke starts afresh;
//! - [`TypingDebouncer::next_deadline`] is when the driver should call `poll` next;
//! - [`TypingDebouncer::on_sent`] ends the burst when a message goes (the message itself
//!   clears the indicator at the other side), and [`TypingDebouncer::stop`] when the app
//!   says typing stopped.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cc_chat::{TypingConfig, TypingDebouncer};
//! let t0 = Instant::now();
//! let mut typing = TypingDebouncer::new(TypingConfig::default());
//! assert!(typing.on_input(t0));                              // start
//! assert!(!typing.on_input(t0 + Duration::from_secs(1)));    // too soon
//! assert_eq!(typing.next_deadline(), Some(t0 + Duration::from_secs(4)));
//! assert!(typing.poll(t0 + Duration::from_secs(4)));         // idle: stop
//! ```

use std::time::{Duration, Instant};

/// The typing timings of one adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypingConfig {
    /// At most one typing-start per this interval while the user keeps typing.
    pub resend_every: Duration,
    /// Idle time after which typing stops.
    pub idle_after: Duration,
    /// Whether the vendor has a typing-stop signal.
    pub send_stop: bool,
}

impl Default for TypingConfig {
    /// A start every 5 s, a stop after 3 s idle.
    fn default() -> Self {
        TypingConfig {
            resend_every: Duration::from_secs(5),
            idle_after: Duration::from_secs(3),
            send_stop: true,
        }
    }
}

/// Turns keystrokes into typing signals; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct TypingDebouncer {
    config: TypingConfig,
    /// When the last typing-start was sent, while a burst is on.
    last_start: Option<Instant>,
    /// The last keystroke of the current burst.
    last_input: Option<Instant>,
}

impl TypingDebouncer {
    /// A debouncer with these timings, idle.
    pub fn new(config: TypingConfig) -> TypingDebouncer {
        TypingDebouncer {
            config,
            last_start: None,
            last_input: None,
        }
    }

    /// The timings.
    pub fn config(&self) -> &TypingConfig {
        &self.config
    }

    /// Whether a burst of typing is on (a start was sent and no stop since).
    pub fn is_typing(&self) -> bool {
        self.last_start.is_some()
    }

    /// A keystroke at `now`; returns whether to send typing-start now.
    pub fn on_input(&mut self, now: Instant) -> bool {
        self.poll(now);
        self.last_input = Some(now);
        match self.last_start {
            Some(t) if now.saturating_duration_since(t) < self.config.resend_every => false,
            _ => {
                self.last_start = Some(now);
                true
            }
        }
    }

    /// Checks the idle timer at `now`; returns whether to send typing-stop now.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.last_input {
            Some(t) if now.saturating_duration_since(t) >= self.config.idle_after => self.end(),
            _ => false,
        }
    }

    /// When [`TypingDebouncer::poll`] should be called next, while a burst is on.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.last_input.map(|t| t + self.config.idle_after)
    }

    /// A message was sent at `now`: the burst ends without a typing-stop.
    pub fn on_sent(&mut self, _now: Instant) {
        self.last_start = None;
        self.last_input = None;
    }

    /// The app says typing stopped; returns whether to send typing-stop now.
    pub fn stop(&mut self, _now: Instant) -> bool {
        self.end()
    }

    fn end(&mut self) -> bool {
        let was = self.last_start.take().is_some();
        self.last_input = None;
        was && self.config.send_stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn cfg(resend: u32, idle: u32, send_stop: bool) -> TypingConfig {
        TypingConfig {
            resend_every: resend * S,
            idle_after: idle * S,
            send_stop,
        }
    }

    #[test]
    fn start_at_most_once_per_interval_while_typing() {
        let t0 = Instant::now();
        let mut d = TypingDebouncer::new(cfg(5, 3, true));
        assert!(!d.is_typing());
        assert_eq!(d.next_deadline(), None);
        let starts: Vec<u64> = (0..24)
            .map(|i| t0 + i * S / 2) // a keystroke every 0.5 s for 12 s
            .filter(|&t| d.on_input(t))
            .map(|t| (t - t0).as_millis() as u64)
            .collect();
        assert_eq!(starts, [0, 5000, 10000]);
        assert!(d.is_typing());
    }

    #[test]
    fn stop_after_idle_once() {
        let t0 = Instant::now();
        let mut d = TypingDebouncer::new(cfg(5, 3, true));
        assert!(d.on_input(t0));
        assert!(!d.on_input(t0 + S));
        assert_eq!(d.next_deadline(), Some(t0 + 4 * S));
        assert!(!d.poll(t0 + 3 * S), "idle only 2 s");
        assert!(d.poll(t0 + 4 * S));
        assert!(!d.poll(t0 + 5 * S), "one stop per burst");
        assert_eq!(d.next_deadline(), None);
        // Typing again after the stop starts at once, though within resend_every.
        assert!(d.on_input(t0 + 4 * S + S / 2));
    }

    #[test]
    fn an_input_after_a_long_pause_stops_nothing_but_starts_again() {
        let t0 = Instant::now();
        let mut d = TypingDebouncer::new(cfg(5, 3, true));
        assert!(d.on_input(t0));
        // The driver missed the deadline; the next keystroke starts a new burst.
        assert!(d.on_input(t0 + 4 * S));
    }

    #[test]
    fn vendors_without_stop_get_no_stop() {
        let t0 = Instant::now();
        let mut d = TypingDebouncer::new(cfg(3, 2, false));
        assert!(d.on_input(t0));
        assert!(!d.poll(t0 + 2 * S));
        assert!(!d.is_typing());
        assert!(d.on_input(t0 + 2 * S + S / 2));
        assert!(!d.stop(t0 + 3 * S));
    }

    #[test]
    fn sending_a_message_resets() {
        let t0 = Instant::now();
        let mut d = TypingDebouncer::new(cfg(5, 3, true));
        assert!(d.on_input(t0));
        d.on_sent(t0 + S);
        assert!(!d.is_typing());
        assert!(!d.poll(t0 + 10 * S), "no stop after a send");
        assert!(d.on_input(t0 + 2 * S), "a new burst starts at once");
        assert!(d.stop(t0 + 2 * S));
        assert!(!d.stop(t0 + 2 * S));
    }
}
