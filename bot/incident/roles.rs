//! Incident roles: who leads, who talks to stakeholders, who keeps the record.
//!
//! A big incident needs more than an owner (runbook 004: "Assign roles"). The
//! roles and their duties are configurable (`[[incidents.roles]]`); the
//! defaults are the three every incident-command practice names. A role has
//! one holder at a time; the owner stays the owner.

use std::fmt;

/// A role's name as people type it: 1–32 lowercase letters, digits or `-`,
/// starting with a letter (`commander`, `comms`, `scribe`, `ops-lead`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(String);

impl RoleName {
    pub const MAX_CHARS: usize = 32;

    /// `Err` says why `s` is no role name.
    pub fn parse(s: &str) -> Result<RoleName, String> {
        let lower = s.trim().to_ascii_lowercase();
        let ok = !lower.is_empty()
            && lower.len() <= Self::MAX_CHARS
            && lower.starts_with(|c: char| c.is_ascii_lowercase())
            && lower
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(RoleName(lower))
        } else {
            Err(format!(
                "`{s}` is not a role name: use 1–{} lowercase letters, digits or `-`, starting with a letter",
                Self::MAX_CHARS
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role of this install and what its holder is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: RoleName,
    /// The duties, sent to the holder by direct message (Slack mrkdwn).
    pub duties: String,
}

/// The roles when `[[incidents.roles]]` names none, with duties written from
/// the runbooks (004: "Assign roles", "updates every 30 minutes", "document
/// everything"; 002: the evidence to keep).
pub fn defaults() -> Vec<Role> {
    let role = |name: &str, duties: &str| Role {
        name: RoleName(name.to_string()),
        duties: duties.to_string(),
    };
    vec![
        role(
            "commander",
            "You lead the response: you decide what is tried and in which order, who does what, \
             and when to escalate or call it resolved. Keep the others unblocked; do not debug yourself.",
        ),
        role(
            "comms",
            "You talk to stakeholders: post a status update (`/incident status …`) at least every \
             30 minutes for a P0 and every hour for a P1, keep the status page true, and answer questions \
             so responders can work.",
        ),
        role(
            "scribe",
            "You keep the record: note decisions, commands run and their outcomes with timestamps, and \
             record follow-ups with `/incident followup …`. The timeline becomes the postmortem.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_single_lowercase_words() {
        assert_eq!(
            RoleName::parse("Commander").map(|r| r.0),
            Ok("commander".into())
        );
        assert!(RoleName::parse("ops-lead").is_ok());
        for bad in ["", "1st", "two words", "<!channel>", &"a".repeat(33)] {
            assert!(RoleName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_roles_are_commander_comms_and_scribe() {
        let names: Vec<String> = defaults().iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names, ["commander", "comms", "scribe"]);
    }
}
