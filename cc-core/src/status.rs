//! Service status: is the contact center open, how busy is it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether the service takes contacts now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Open and taking contacts.
    Open,
    /// Within opening hours but not taking contacts (no agents, maintenance).
    OutOfService,
    /// Closed by the calendar.
    ClosedByCalendar,
    /// The vendor did not say.
    Unknown,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// One opening window, in the calendar's time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningWindow {
    /// The day.
    pub day: Weekday,
    /// Opening time, minutes after midnight.
    pub open_minute: u16,
    /// Closing time, minutes after midnight.
    pub close_minute: u16,
}

/// Opening hours, where the vendor exposes a calendar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningHours {
    /// IANA time zone of the windows.
    pub time_zone: Option<String>,
    /// The weekly windows.
    pub windows: Vec<OpeningWindow>,
}

/// What [`crate::Session::service_status`] asks about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusQuery {
    /// The queue, service or entry point; the configured one when `None`.
    pub queue: Option<String>,
}

/// The status of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Open, out of service, closed by calendar or unknown.
    pub availability: Availability,
    /// Agents ready to take a contact, when known.
    pub agents_available: Option<u32>,
    /// Contacts waiting, when known.
    pub queue_length: Option<u32>,
    /// Expected wait for a new contact, when known.
    pub expected_wait: Option<Duration>,
    /// Opening hours, when known.
    pub opening_hours: Option<OpeningHours>,
}

impl ServiceStatus {
    /// A status where nothing is known.
    pub const UNKNOWN: ServiceStatus = ServiceStatus {
        availability: Availability::Unknown,
        agents_available: None,
        queue_length: None,
        expected_wait: None,
        opening_hours: None,
    };
}
