//! The outside systems the use cases need, as traits the wiring plugs in.
//!
//! The use cases sit below the adapters: they name what they need here, and the
//! adapters (`crate::slack::groups`, `crate::alertmanager`) implement it. Tests
//! and the demo can plug in their own.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use crate::time::Millis;

/// A boxed future, as object-safe traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is in a Slack user group.
pub trait Directory: Send + Sync + Debug {
    /// The user IDs in `group` (`S…`); `Err` says why they could not be read.
    fn members<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<HashSet<String>, String>>;
}

/// A directory with no groups (console mode, tests).
#[derive(Debug, Default)]
pub struct NoGroups;

impl Directory for NoGroups {
    fn members<'a>(&'a self, _group: &'a str) -> BoxFuture<'a, Result<HashSet<String>, String>> {
        Box::pin(async { Ok(HashSet::new()) })
    }
}

/// A silence to create in Alertmanager (API v2, `POST /api/v2/silences`).
#[derive(Debug, Clone)]
pub struct NewSilence {
    /// Label name → value, each an exact, equal matcher.
    pub matchers: BTreeMap<String, String>,
    /// More matchers, as an alert route writes them (`=`, `!=`, `=~`, `!~`).
    pub patterns: Vec<crate::alerts::routing::Matcher>,
    pub starts: Millis,
    pub ends: Millis,
    /// `slack:U…`.
    pub created_by: String,
    pub comment: String,
}

/// An alert as Alertmanager's API lists it (`GET /api/v2/alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAlert {
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// When Alertmanager says it started firing (`startsAt`), if it said.
    pub starts_at: Option<Millis>,
}

/// Alertmanager's API v2: silences, and which alerts are active.
pub trait Alertmanager: Send + Sync + Debug {
    /// Creates a silence; returns its id.
    fn create<'a>(&'a self, silence: &'a NewSilence) -> BoxFuture<'a, Result<String, String>>;
    /// Expires a silence; one that no longer exists counts as expired.
    fn expire<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// How many alerts are active now that carry every label of `matchers`
    /// (exact values) and go to the receiver named `receiver`.
    fn active_alerts<'a>(
        &'a self,
        matchers: &'a BTreeMap<String, String>,
        receiver: &'a str,
    ) -> BoxFuture<'a, Result<u64, String>>;
    /// Every alert Alertmanager holds now (active, silenced or inhibited)
    /// that carries every label of `matchers`: what a silence with those
    /// matchers would mute.
    fn matching_alerts<'a>(
        &'a self,
        matchers: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Vec<ListedAlert>, String>>;
}

/// Why Slack did not do what a [`Conversations`] call asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another channel has the name (`name_taken`): try another.
    NameTaken,
    /// Slack will not do it for this app as configured: a missing scope
    /// (`missing_scope`, with the scope), an admin's restriction
    /// (`restricted_action`) … The code, and what it means when known.
    Refused(String),
    /// Worth trying again later (5xx, timeouts, rate limits).
    Retry(String),
}

/// Slack conversations a major incident's room needs ("conversations.create",
/// "conversations.setTopic", "conversations.invite", "conversations.archive").
pub trait Conversations: Send + Sync + Debug {
    /// Creates a public channel named `name`; returns its id (`C…`).
    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, Refusal>>;
    /// Sets the channel's topic.
    fn set_topic<'a>(
        &'a self,
        channel: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>>;
    /// Invites `user`; somebody already in the channel counts as invited.
    fn invite<'a>(&'a self, channel: &'a str, user: &'a str) -> BoxFuture<'a, Result<(), Refusal>>;
    /// The id of a public channel named `name` that this app created at or
    /// after `since` and that is not archived: the one a create whose answer
    /// was lost made (Slack: "conversations.list", its `creator` and `created`).
    fn find_own<'a>(
        &'a self,
        name: &'a str,
        since: crate::time::Millis,
    ) -> BoxFuture<'a, Result<Option<String>, Refusal>>;
    /// Archives the channel; one already archived counts as archived.
    fn archive<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), Refusal>>;
}

/// The team's issue tracker, reached through one outgoing webhook
/// (`[followups] webhook_url`).
pub trait Tracker: Send + Sync + Debug {
    /// POSTs `body` with `Idempotency-Key: key` (the same for every attempt
    /// at one follow-up); `Ok` carries what the tracker answered that names
    /// the issue (an `id`, `key`, `url` or `html_url` field of a JSON answer), if any.
    fn file<'a>(
        &'a self,
        body: String,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Refusal>>;
}
