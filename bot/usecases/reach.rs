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
    /// Slack refused the token: its error (`invalid_auth`, `token_revoked` …).
    Failed(String),
    /// `auth.test` got no answer from Slack: why (`timeout`, a proxy's
    /// `http_407`, a wrong API URL's `http_404`, Slack's `http_503`).
    Unreachable(String),
}

/// How Klaxon's Socket Mode link to Slack stands (Slack: "Using Socket Mode").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketLink {
    /// Socket Mode is off: Slack reaches Klaxon over HTTP.
    Off,
    /// No socket has said `hello` yet, or the last one went: why (the
    /// connect attempt's failure, or the reason the socket closed).
    Connecting(String),
    /// This many sockets are open and past `hello` (two during a refresh).
    Connected(usize),
    /// Slack closed the link with `link_disabled`: Socket Mode was turned off
    /// in the app's settings, so Slack sends nothing down a socket.
    Disabled,
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
    socket: SocketLink,
}

impl Default for SlackReach {
    fn default() -> Self {
        SlackReach {
            state: RwLock::new(State {
                auth: Auth::Unknown,
                blocked: BTreeMap::new(),
                missing_scopes: Vec::new(),
                socket: SocketLink::Off,
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

    /// Records how the Socket Mode link stands (written by `crate::socket_mode`).
    pub fn set_socket(&self, link: SocketLink) {
        if let Ok(mut s) = self.state.write() {
            s.socket = link;
        }
    }

    /// How the Socket Mode link stands.
    pub fn socket(&self) -> SocketLink {
        self.state
            .read()
            .map(|s| s.socket.clone())
            .unwrap_or(SocketLink::Off)
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

    /// Records that Klaxon can post in `channel` (again); `true` when it
    /// could not before.
    pub fn unblock(&self, channel: &str) -> bool {
        let known = self
            .state
            .read()
            .map(|s| s.blocked.contains_key(channel))
            .unwrap_or(false);
        if known && let Ok(mut s) = self.state.write() {
            return s.blocked.remove(channel).is_some();
        }
        false
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
        if let Some(why) = self.blocked(channel) {
            return Some(format!(
                "⚠️ Klaxon cannot post in <#{channel}> yet (Slack says `{why}`): nothing is lost, \
                 the thread appears as soon as it can. {}",
                how_to_fix(&why)
            ));
        }
        if let Auth::Failed(why) = self.auth() {
            return Some(format!(
                "⚠️ Slack refuses Klaxon's bot token (`{why}`): nothing reaches Slack until \
                 KLAXON_SLACK_BOT_TOKEN is fixed; nothing is lost, the thread appears then."
            ));
        }
        self.missing_scopes().contains(&"chat:write").then(|| {
            "⚠️ The Slack app lacks the `chat:write` scope, so Klaxon cannot post the thread: \
             add it under OAuth & Permissions and reinstall the app; nothing is lost meanwhile."
                .to_string()
        })
    }
}

/// What fixes a channel Slack will not let Klaxon post in, by Slack's error.
pub fn how_to_fix(code: &str) -> &'static str {
    match code {
        "is_archived" => {
            "The channel is archived: unarchive it, or point Klaxon at another channel \
             (KLAXON_INCIDENT_CHANNEL, or the alert route's channel)."
        }
        _ => {
            "Invite the bot there with `/invite @Klaxon` (a private channel needs the \
             invitation), or check the channel ID (KLAXON_INCIDENT_CHANNEL, or the alert \
             route's channel)."
        }
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
        assert!(reach.unblock("C0INCIDENTS"), "it was blocked");
        assert_eq!(reach.warning(&c), None);
        reach.block("C0INCIDENTS", "is_archived");
        let w = reach.warning(&c).expect("a warning");
        assert!(w.contains("unarchive") && !w.contains("/invite"), "{w}");
        reach.unblock("C0INCIDENTS");
        reach.set_auth(Auth::Failed("token_revoked".into()));
        let w = reach.warning(&c).expect("a warning about the token");
        assert!(
            w.contains("token_revoked") && w.contains("KLAXON_SLACK_BOT_TOKEN"),
            "{w}"
        );
    }
}
