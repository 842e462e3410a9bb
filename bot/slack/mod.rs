//! Talking to Slack.
//!
//! - [`api`]: one Web API call and what its answer means (sent, rate-limited,
//!   worth retrying, or never going to work); or the console stand-in that logs
//!   what it would post when no bot token is configured.
//! - [`blocks`]: Block Kit JSON built around rendered template text.
//! - [`outbox`]: the sender that drains the outbox table in order per incident,
//!   paced per channel, retrying until Slack has every message.

pub mod api;
pub mod blocks;
pub mod groups;
pub mod outbox;
