//! What Klaxon knows about reaching Slack: whether its credentials work, and
//! the channels it cannot post in (and why). The Slack adapters write it (the
//! checks at start and every minute, the outbox when Slack refuses a message);
//! the use cases read it, so the person who typed a command is told, in the
//! answer, that the thread cannot appear yet and how to fix that; `/readyz`
//! shows it.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::incident::ChannelId;

/// Whether Slack accepted Klaxon's bot token when last asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Not checked yet.
    Unknown,
    /// No bot token: console mode, nothing is sent to Slack.
    Console,
    /// `auth.test` passed: the workspace and the bot's user, for the log.
    Ok(String),
    /// `auth.test` failed: Slack's error (`invalid_auth`, `token_revoked` …).
    Failed(String),
}

/// Shared, updated as Klaxon learns; cheap to read.
#[derive(Debug)]
pub struct SlackReach {
    state: RwLock<State>,
}

#[derive(Debug)]
struct State {
    auth: Auth,
    /// Channel ID → why Klaxon cannot post there.
    blocked: BTreeMap<String, String>,
    /// Scopes Klaxon uses that the bot token lacks.
    missing_scopes: Vec<&'static str>,
}

impl Default for SlackReach {
    fn default() -> Self {
        SlackReach {
            state: RwLock::new(State {
                auth: Auth::Unknown,
                blocked: BTreeMap::new(),
                missing_scopes: Vec::new(),
            }),
        }
    }
}

impl SlackReach {
    pub fn set_auth(&self, auth: Auth) {
        if let Ok(mut s) = self.state.write() {
            s.auth = auth;
        }
    }

    pub fn auth(&self) -> Auth {
        self.state
            .read()
            .map(|s| s.auth.clone())
            .unwrap_or(Auth::Unknown)
    }

    /// Records the scopes Klaxon uses that the bot token lacks.
    pub fn set_missing_scopes(&self, scopes: &[&'static str]) {
        if let Ok(mut s) = self.state.write() {
            s.missing_scopes = scopes.to_vec();
        }
    }

    /// The scopes Klaxon uses that the bot token lacks, as last checked.
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        self.state
            .read()
            .map(|s| s.missing_scopes.clone())
            .unwrap_or_default()
    }

    /// Records that Klaxon cannot post in `channel`, and why (Slack's error).
    pub fn block(&self, channel: &str, why: &str) {
        if let Ok(mut s) = self.state.write() {
            s.blocked.insert(channel.to_string(), why.to_string());
        }
    }

    /// Records that Klaxon can post in `channel` (again).
    pub fn unblock(&self, channel: &str) {
        let known = self
            .state
            .read()
            .map(|s| s.blocked.contains_key(channel))
            .unwrap_or(false);
        if known && let Ok(mut s) = self.state.write() {
            s.blocked.remove(channel);
        }
    }

    /// Why Klaxon cannot post in `channel`, if it cannot.
    pub fn blocked(&self, channel: &ChannelId) -> Option<String> {
        self.state
            .read()
            .ok()
            .and_then(|s| s.blocked.get(channel.as_str()).cloned())
    }

    /// Every channel Klaxon cannot post in, with why.
    pub fn blocked_channels(&self) -> BTreeMap<String, String> {
        self.state
            .read()
            .map(|s| s.blocked.clone())
            .unwrap_or_default()
    }

    /// A line for the person who asked, when the incident's thread cannot
    /// appear in `channel` yet: what Slack said and how to fix it.
    pub fn warning(&self, channel: &ChannelId) -> Option<String> {
        let why = self.blocked(channel)?;
        Some(format!(
            "⚠️ Klaxon cannot post in <#{channel}> yet (Slack says `{why}`): nothing is lost, \
             the thread appears as soon as it can. Invite the bot there with `/invite @Klaxon` \
             (a private channel needs the invitation), or check the channel ID \
             (KLAXON_INCIDENT_CHANNEL, or the alert route's channel)."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_channel_warns_until_it_is_unblocked() {
        let reach = SlackReach::default();
        let c = ChannelId::parse("C0INCIDENTS").expect("id");
        assert_eq!(reach.warning(&c), None);
        reach.block("C0INCIDENTS", "not_in_channel");
        let w = reach.warning(&c).expect("a warning");
        assert!(
            w.contains("`not_in_channel`") && w.contains("/invite @Klaxon"),
            "{w}"
        );
        reach.unblock("C0INCIDENTS");
        assert_eq!(reach.warning(&c), None);
    }
}
