//! Talking to Slack: the adapters between Klaxon and Slack's Web API.
//!
//! - [`api`]: one Web API call and what its answer means (sent, rate-limited,
//!   worth retrying, or never going to work); or the console stand-in that logs
//!   what it would post when no bot token is configured.
//! - [`outbox`]: the sender that drains the outbox table in order per incident,
//!   paced per channel, retrying until Slack has every message.
//! - [`groups`]: who is in a Slack user group, for permissions.
//! - [`conversations`]: major incidents' own channels (create, topic,
//!   invite, archive).
//!
//! What a message says and how it is laid out is not here: see
//! [`crate::templates`] and [`crate::blocks`].

pub mod api;
pub mod conversations;
pub mod groups;
pub mod outbox;
