//! Who takes part: customers and agents are both users, with one [`Participant`] shape.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The role of a user in an engagement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person the app serves.
    Customer,
    /// A human agent of the contact center.
    Agent,
    /// A bot or virtual agent.
    Bot,
    /// The contact center itself (notices, queue announcements).
    System,
}

/// A user's preferences, where the vendor exposes or accepts them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Preferred language (`en`, `it`).
    pub language: Option<String>,
    /// Locale (`en-GB`).
    pub locale: Option<String>,
    /// IANA time zone (`Europe/Rome`).
    pub time_zone: Option<String>,
    /// Preferred channels (`chat`, `voice`, `video`, `email`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

/// One user taking part in an engagement: the customer, an agent, a bot or the system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The vendor's id of the participant, when it has one.
    pub id: Option<Arc<str>>,
    /// The role.
    pub role: Role,
    /// The name shown to the other side.
    pub display_name: Option<String>,
    /// Preferences, when known.
    #[serde(default)]
    pub preferences: Preferences,
}

/// Customers and agents are both users: a `User` is a [`Participant`].
pub type User = Participant;

impl Participant {
    /// A participant with a role and nothing else known.
    pub fn new(role: Role) -> Self {
        Participant {
            id: None,
            role,
            display_name: None,
            preferences: Preferences::default(),
        }
    }

    /// Sets the vendor id.
    pub fn with_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
}

/// The customer's profile, sent to the vendor when a chat or call starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The app's or the CRM's id of the customer.
    pub id: Option<String>,
    /// Nickname shown to the agent.
    pub nickname: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number, E.164 preferred.
    pub phone: Option<String>,
    /// Preferences (language, locale, time zone, channels).
    #[serde(default)]
    pub preferences: Preferences,
    /// Custom attributes passed to the vendor as user data.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Customer {
    /// The name to show: nickname, else first and last name, else `None`.
    pub fn display_name(&self) -> Option<String> {
        if let Some(n) = &self.nickname {
            return Some(n.clone());
        }
        match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f.clone()),
            (None, Some(l)) => Some(l.clone()),
            (None, None) => None,
        }
    }

    /// This customer as a [`Participant`].
    pub fn participant(&self) -> Participant {
        Participant {
            id: self.id.as_deref().map(Arc::from),
            role: Role::Customer,
            display_name: self.display_name(),
            preferences: self.preferences.clone(),
        }
    }
}
