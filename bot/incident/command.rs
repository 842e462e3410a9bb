//! The `/incident` grammar (DESIGN §1): text typed in Slack → a [`Command`].
//!
//! Parsing is total: every input gives either a command or a [`UsageError`] that
//! tells the person what was wrong and how the command is written. Nothing here
//! touches the database.

use super::component::{ComponentName, ComponentStatus};
use super::{IncidentRef, Severity, SlackUserId, UserText};

/// One `/incident …` request, fully validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Open {
        severity: Option<Severity>,
        title: UserText,
        /// `--component NAME` (repeatable, or `a,b`): what the status page shows it touching.
        components: Vec<ComponentName>,
    },
    Ack {
        target: Option<IncidentRef>,
    },
    Status {
        target: Option<IncidentRef>,
        text: UserText,
        /// `--public`: also published on the status page.
        public: bool,
    },
    Sev {
        target: Option<IncidentRef>,
        severity: Severity,
    },
    Assign {
        target: Option<IncidentRef>,
        owner: SlackUserId,
    },
    Resolve {
        target: Option<IncidentRef>,
        summary: UserText,
    },
    Escalate {
        target: Option<IncidentRef>,
    },
    /// Who is on call now, per schedule.
    OnCall,
    Silence {
        target: Option<IncidentRef>,
        duration: std::time::Duration,
    },
    Reopen {
        target: Option<IncidentRef>,
    },
    /// Run an approved action.
    Run {
        action: String,
        target: Option<IncidentRef>,
        params: Vec<(String, String)>,
        dry_run: bool,
    },
    /// List the approved actions.
    Actions,
    List,
    Help,
    /// `/incident maintenance …`.
    Maintenance(Maintenance),
    /// Gives `user` the role `role` (commander, comms, scribe …).
    Role {
        role: super::roles::RoleName,
        target: Option<IncidentRef>,
        user: SlackUserId,
    },
    /// Produces the postmortem skeleton as a file in the thread.
    Postmortem {
        target: Option<IncidentRef>,
    },
    /// Records a follow-up (action item), optionally with its owner.
    FollowUp {
        target: Option<IncidentRef>,
        owner: Option<SlackUserId>,
        text: UserText,
    },
    /// Sets the status-page components an incident touches (none: clears them).
    Components {
        target: Option<IncidentRef>,
        components: Vec<ComponentName>,
    },
    /// Sets a component's state on the status page by hand; `None` (`auto`):
    /// back to the state its open incidents give it.
    ComponentState {
        component: ComponentName,
        status: Option<ComponentStatus>,
    },
}

/// `/incident maintenance start|list|end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    /// Covers alert route `route` from now for `duration`.
    Start {
        route: String,
        duration: std::time::Duration,
        reason: Option<UserText>,
    },
    /// Windows active now or still to come.
    List,
    /// Ends window `id` now.
    End { id: i64 },
}

impl Command {
    /// Whether the command only reads (help, lists): answering it twice is harmless.
    pub fn changes_nothing(&self) -> bool {
        matches!(
            self,
            Command::Help
                | Command::List
                | Command::OnCall
                | Command::Actions
                | Command::Maintenance(Maintenance::List)
        )
    }
}

/// What went wrong, and how to write the command instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub usage: &'static str,
}

impl UsageError {
    fn new(message: impl Into<String>, usage: &'static str) -> Self {
        UsageError {
            message: message.into(),
            usage,
        }
    }
}

pub const USAGE_OPEN: &str = "/incident open [P0|P1|P2|P3] [--component NAME …] <title>";
pub const USAGE_ACK: &str = "/incident ack [INC-n]";
pub const USAGE_STATUS: &str = "/incident status [INC-n] [--public] <text>";
pub const USAGE_COMPONENTS: &str = "/incident components [INC-n] <component …|none>";
pub const USAGE_COMPONENT_STATE: &str = "/incident component <component> <operational|degraded_performance|partial_outage|major_outage|under_maintenance|auto>";
pub const USAGE_SEV: &str = "/incident sev [INC-n] P0|P1|P2|P3";
pub const USAGE_ASSIGN: &str = "/incident assign [INC-n] @user";
pub const USAGE_RESOLVE: &str = "/incident resolve [INC-n] <summary>";
pub const USAGE_ESCALATE: &str = "/incident escalate [INC-n]";
pub const USAGE_REOPEN: &str = "/incident reopen INC-n";
pub const USAGE_RUN: &str = "/incident run <action> [INC-n] [key=value …] [--dry-run]";
pub const USAGE_SILENCE: &str = "/incident silence [INC-n] <duration, e.g. 2h>";
pub const USAGE_ROLE: &str = "/incident role <commander|comms|scribe> [INC-n] @user";
pub const USAGE_POSTMORTEM: &str = "/incident postmortem [INC-n]";
pub const USAGE_FOLLOWUP: &str = "/incident followup [INC-n] [@owner] <text>";
pub const USAGE_MAINTENANCE: &str =
    "/incident maintenance start <route> <duration> [reason] | list | end <id>";

/// The text of `/incident help`.
pub const HELP: &str = "\
*Klaxon* — incident commands
`/incident open [P0|P1|P2|P3] [--component NAME …] <title>` declare an incident; a thread opens in the incident channel
`/incident ack [INC-n]` acknowledge: you are on it
`/incident status [INC-n] [--public] <text>` post a status update in the thread; `--public` also publishes it on the status page
`/incident components [INC-n] <component …|none>` which status-page components the incident touches
`/incident component <component> <state|auto>` set a component's state on the status page by hand (`auto`: from its incidents again)
`/incident sev [INC-n] P0|P1|P2|P3` change severity
`/incident assign [INC-n] @user` set the incident owner
`/incident resolve [INC-n] <summary>` resolve and post the resolution summary (the Resolve button asks for root cause and follow-up too)
`/incident escalate [INC-n]` page the next level of the escalation ladder now
`/incident reopen INC-n` reopen a resolved or acknowledged incident; its ladder resumes
`/incident oncall` who is on call now (also `/incident who`)
`/incident silence [INC-n] <duration>` silence the incident's alerts in Alertmanager (e.g. `2h`)
`/incident run <action> [INC-n] [key=value …] [--dry-run]` run an approved check or restart
`/incident actions` the approved actions and who may run them
`/incident list` open incidents
`/incident role <commander|comms|scribe> [INC-n] @user` give someone a role; they get its duties by DM
`/incident followup [INC-n] [@owner] <text>` record a follow-up (action item)
`/incident postmortem [INC-n]` the postmortem skeleton as a Markdown file in the thread
`/incident maintenance start <route> <duration> [reason]` a maintenance window: the route's new alerts open no incident and its ladders pause (also `… list`, `… end <id>`)
`/incident help` this text
`INC-n` may be left out when the channel has exactly one open incident.
Severities: P0 critical (respond in 15 min) · P1 high (1 h) · P2 medium (4 h) · P3 low (next business day).";

/// Splits off the first whitespace-separated word; the rest keeps its inner spacing.
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// An optional leading `INC-n`. A word that looks like a ref but is malformed is an error,
/// not text: `/incident status INC-1x fixed` should not post "INC-1x fixed" somewhere.
fn optional_ref<'a>(
    rest: &'a str,
    usage: &'static str,
) -> Result<(Option<IncidentRef>, &'a str), UsageError> {
    let (word, after) = first_word(rest);
    if IncidentRef::looks_like(word) {
        let r = word
            .parse::<IncidentRef>()
            .map_err(|e| UsageError::new(e, usage))?;
        Ok((Some(r), after))
    } else {
        Ok((None, rest.trim()))
    }
}

/// A flag as typed: `--public`, or with the dash a phone or a word processor
/// makes of `--` (`—public`, `–public`).
fn as_flag(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    match lower.strip_prefix(['\u{2014}', '\u{2013}']) {
        Some(rest) => format!("--{rest}"),
        None => lower,
    }
}

/// Whether `rest` starts with `flag` (then without it).
fn take_flag<'a>(rest: &'a str, flag: &str) -> (bool, &'a str) {
    let (word, after) = first_word(rest);
    if as_flag(word) == flag {
        (true, after)
    } else {
        (false, rest)
    }
}

/// Component names separated by spaces or commas.
fn component_list(text: &str, usage: &'static str) -> Result<Vec<ComponentName>, UsageError> {
    let mut out: Vec<ComponentName> = Vec::new();
    for word in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if word.is_empty() {
            continue;
        }
        let name = ComponentName::parse(word).map_err(|e| UsageError::new(e, usage))?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Takes every `--component NAME[,NAME]` (or `--component=NAME`) out of an
/// `open` command's words; the rest keeps its order.
fn take_components(rest: &str) -> Result<(Vec<ComponentName>, String), UsageError> {
    let mut components = Vec::new();
    let mut kept: Vec<&str> = Vec::new();
    let mut words = rest.split_whitespace();
    while let Some(word) = words.next() {
        let lower = as_flag(word);
        let value = if lower == "--component" || lower == "--components" {
            Some(words.next().ok_or_else(|| {
                UsageError::new("`--component` needs a component name", USAGE_OPEN)
            })?)
        } else {
            lower
                .strip_prefix("--component=")
                .or_else(|| lower.strip_prefix("--components="))
                .map(|v| &word[word.len() - v.len()..])
        };
        match value {
            Some(v) if v.trim_matches(',').is_empty() => {
                return Err(UsageError::new(
                    "`--component` needs a component name",
                    USAGE_OPEN,
                ));
            }
            Some(v) => {
                for name in component_list(v, USAGE_OPEN)? {
                    if !components.contains(&name) {
                        components.push(name);
                    }
                }
            }
            None => kept.push(word),
        }
    }
    if components.is_empty() {
        return Ok((components, rest.to_string()));
    }
    Ok((components, kept.join(" ")))
}

/// Parses the text after `/incident`.
pub fn parse(text: &str) -> Result<Command, UsageError> {
    let (sub, rest) = first_word(text);
    match sub.to_ascii_lowercase().as_str() {
        "" | "help" => Ok(Command::Help),
        "open" | "declare" => {
            let (components, rest) = take_components(rest)?;
            let rest = rest.as_str();
            let (word, after) = first_word(rest);
            let (severity, title) = match word.parse::<Severity>() {
                Ok(sev) => (Some(sev), after),
                Err(_) if looks_like_severity(word) => {
                    return Err(UsageError::new(
                        format!("`{word}` is not a severity; use P0, P1, P2 or P3"),
                        USAGE_OPEN,
                    ));
                }
                Err(_) => (None, rest),
            };
            // A title is one line: it must not print lines of its own in the root.
            let title = UserText::parse(&super::single_line(title), "title")
                .map_err(|e| UsageError::new(format!("{e}: say what is broken"), USAGE_OPEN))?;
            Ok(Command::Open {
                severity,
                title,
                components,
            })
        }
        "ack" | "acknowledge" => {
            let (target, after) = optional_ref(rest, USAGE_ACK)?;
            if !after.is_empty() {
                return Err(UsageError::new(
                    format!("`ack` takes only an incident ref, not `{after}`"),
                    USAGE_ACK,
                ));
            }
            Ok(Command::Ack { target })
        }
        "status" | "update" => {
            let (public_first, rest) = take_flag(rest, "--public");
            let (target, after) = optional_ref(rest, USAGE_STATUS)?;
            let (public_after, after) = take_flag(after, "--public");
            let text = UserText::parse(after, "status update")
                .map_err(|e| UsageError::new(e, USAGE_STATUS))?;
            Ok(Command::Status {
                target,
                text,
                public: public_first || public_after,
            })
        }
        "components" | "affects" => {
            let (target, after) = optional_ref(rest, USAGE_COMPONENTS)?;
            if after.is_empty() {
                return Err(UsageError::new(
                    "which components? (`none` clears them)",
                    USAGE_COMPONENTS,
                ));
            }
            let components = if after.eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                component_list(after, USAGE_COMPONENTS)?
            };
            Ok(Command::Components { target, components })
        }
        "component" => {
            let (name, after) = first_word(rest);
            let (state, extra) = first_word(after);
            if name.is_empty() || state.is_empty() {
                return Err(UsageError::new(
                    "which component, and which state?",
                    USAGE_COMPONENT_STATE,
                ));
            }
            let component = ComponentName::parse(name)
                .map_err(|e| UsageError::new(e, USAGE_COMPONENT_STATE))?;
            let status = if state.eq_ignore_ascii_case("auto") {
                None
            } else {
                Some(ComponentStatus::parse(state).ok_or_else(|| {
                    UsageError::new(
                        format!("`{state}` is not a component state"),
                        USAGE_COMPONENT_STATE,
                    )
                })?)
            };
            if !extra.is_empty() {
                return Err(UsageError::new(
                    format!("unexpected `{extra}` after the state"),
                    USAGE_COMPONENT_STATE,
                ));
            }
            Ok(Command::ComponentState { component, status })
        }
        "sev" | "severity" => {
            let (target, after) = optional_ref(rest, USAGE_SEV)?;
            let (word, extra) = first_word(after);
            if word.is_empty() {
                return Err(UsageError::new("which severity?", USAGE_SEV));
            }
            let severity = word
                .parse::<Severity>()
                .map_err(|e| UsageError::new(e, USAGE_SEV))?;
            if !extra.is_empty() {
                return Err(UsageError::new(
                    format!("unexpected `{extra}` after the severity"),
                    USAGE_SEV,
                ));
            }
            Ok(Command::Sev { target, severity })
        }
        "assign" => {
            let (target, after) = optional_ref(rest, USAGE_ASSIGN)?;
            let (word, extra) = first_word(after);
            if word.is_empty() {
                return Err(UsageError::new("assign to whom?", USAGE_ASSIGN));
            }
            let owner = SlackUserId::parse_mention(word).ok_or_else(|| {
                UsageError::new(
                    format!(
                        "`{word}` is not a Slack user; pick the person from the @ autocomplete so Slack sends their ID"
                    ),
                    USAGE_ASSIGN,
                )
            })?;
            if !extra.is_empty() {
                return Err(UsageError::new(
                    format!("unexpected `{extra}` after the user"),
                    USAGE_ASSIGN,
                ));
            }
            Ok(Command::Assign { target, owner })
        }
        "resolve" | "close" => {
            let (target, after) = optional_ref(rest, USAGE_RESOLVE)?;
            let summary = UserText::parse(after, "resolution summary").map_err(|e| {
                UsageError::new(
                    format!("{e}: say what fixed it (or use the Resolve button)"),
                    USAGE_RESOLVE,
                )
            })?;
            Ok(Command::Resolve { target, summary })
        }
        "list" | "ls" => Ok(Command::List),
        "escalate" => {
            let (target, after) = optional_ref(rest, USAGE_ESCALATE)?;
            if !after.is_empty() {
                return Err(UsageError::new(
                    format!("`escalate` takes only an incident ref, not `{after}`"),
                    USAGE_ESCALATE,
                ));
            }
            Ok(Command::Escalate { target })
        }
        "oncall" | "on-call" | "who" => Ok(Command::OnCall),
        "reopen" => {
            let (target, after) = optional_ref(rest, USAGE_REOPEN)?;
            if !after.is_empty() {
                return Err(UsageError::new(
                    format!("`reopen` takes only an incident ref, not `{after}`"),
                    USAGE_REOPEN,
                ));
            }
            Ok(Command::Reopen { target })
        }
        "actions" => Ok(Command::Actions),
        "run" => parse_run(rest),
        "silence" => {
            let (target, after) = optional_ref(rest, USAGE_SILENCE)?;
            if after.is_empty() {
                return Err(UsageError::new("for how long?", USAGE_SILENCE));
            }
            let duration = crate::time::parse_duration(after)
                .map_err(|e| UsageError::new(e, USAGE_SILENCE))?;
            Ok(Command::Silence { target, duration })
        }
        "maintenance" | "maint" => parse_maintenance(rest),
        "role" => {
            let (word, after) = first_word(rest);
            if word.is_empty() {
                return Err(UsageError::new("which role?", USAGE_ROLE));
            }
            let role =
                super::roles::RoleName::parse(word).map_err(|e| UsageError::new(e, USAGE_ROLE))?;
            let (target, after) = optional_ref(after, USAGE_ROLE)?;
            let (who, extra) = first_word(after);
            if who.is_empty() {
                return Err(UsageError::new(format!("who is {role}?"), USAGE_ROLE));
            }
            let user = SlackUserId::parse_mention(who).ok_or_else(|| {
                UsageError::new(
                    format!(
                        "`{who}` is not a Slack user; pick the person from the @ autocomplete so Slack sends their ID"
                    ),
                    USAGE_ROLE,
                )
            })?;
            if !extra.is_empty() {
                return Err(UsageError::new(
                    format!("unexpected `{extra}` after the user"),
                    USAGE_ROLE,
                ));
            }
            Ok(Command::Role { role, target, user })
        }
        "postmortem" | "pm" | "retro" => {
            let (target, after) = optional_ref(rest, USAGE_POSTMORTEM)?;
            if !after.is_empty() {
                return Err(UsageError::new(
                    format!("`postmortem` takes only an incident ref, not `{after}`"),
                    USAGE_POSTMORTEM,
                ));
            }
            Ok(Command::Postmortem { target })
        }
        "followup" | "follow-up" | "todo" => {
            let (target, after) = optional_ref(rest, USAGE_FOLLOWUP)?;
            let (word, text) = first_word(after);
            let (owner, text) = match SlackUserId::parse_mention(word) {
                Some(u) => (Some(u), text),
                None if word.starts_with("<@") => {
                    return Err(UsageError::new(
                        format!("`{word}` is not a Slack user"),
                        USAGE_FOLLOWUP,
                    ));
                }
                None => (None, after),
            };
            let text = UserText::parse(&super::single_line(text), "follow-up").map_err(|e| {
                UsageError::new(format!("{e}: say what must be done"), USAGE_FOLLOWUP)
            })?;
            Ok(Command::FollowUp {
                target,
                owner,
                text,
            })
        }
        other => Err(UsageError::new(
            format!("`{other}` is not an /incident command"),
            "/incident help",
        )),
    }
}

/// `maintenance start <route> <duration> [reason] | list | end <id>`.
fn parse_maintenance(rest: &str) -> Result<Command, UsageError> {
    let (sub, rest) = first_word(rest);
    let usage = USAGE_MAINTENANCE;
    let m = match sub.to_ascii_lowercase().as_str() {
        "list" | "ls" | "" => {
            if !rest.is_empty() {
                return Err(UsageError::new(
                    format!("`list` takes nothing more, not `{rest}`"),
                    usage,
                ));
            }
            Maintenance::List
        }
        "start" | "begin" => {
            let (route, rest) = first_word(rest);
            if route.is_empty() {
                return Err(UsageError::new(
                    "which alert route? (`name` of an [[alerts.routes]] table, or `default`)",
                    usage,
                ));
            }
            let (duration, reason) = first_word(rest);
            if duration.is_empty() {
                return Err(UsageError::new("for how long? e.g. `2h`", usage));
            }
            let duration =
                crate::time::parse_duration(duration).map_err(|e| UsageError::new(e, usage))?;
            let reason = if reason.is_empty() {
                None
            } else {
                Some(
                    UserText::parse(&super::single_line(reason), "reason")
                        .map_err(|e| UsageError::new(e, usage))?,
                )
            };
            Maintenance::Start {
                route: route.to_string(),
                duration,
                reason,
            }
        }
        "end" | "stop" => {
            let (word, extra) = first_word(rest);
            let id = word
                .trim_start_matches('#')
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    UsageError::new(
                        format!(
                            "`{word}` is not a window number; `/incident maintenance list` shows them"
                        ),
                        usage,
                    )
                })?;
            if !extra.is_empty() {
                return Err(UsageError::new(
                    format!("unexpected `{extra}` after the window number"),
                    usage,
                ));
            }
            Maintenance::End { id }
        }
        other => {
            return Err(UsageError::new(
                format!("`{other}` is not a maintenance command"),
                usage,
            ));
        }
    };
    Ok(Command::Maintenance(m))
}

/// `run <action> [INC-n] [key=value …] [--dry-run]`.
fn parse_run(rest: &str) -> Result<Command, UsageError> {
    let mut words = rest.split_whitespace();
    let Some(action) = words.next() else {
        return Err(UsageError::new(
            "which action? `/incident actions` lists them",
            USAGE_RUN,
        ));
    };
    if !action
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        || action.len() > 40
    {
        return Err(UsageError::new(
            format!("`{action}` is not an action name"),
            USAGE_RUN,
        ));
    }
    let mut target = None;
    let mut params = Vec::new();
    let mut dry_run = false;
    for word in words {
        if word == "--dry-run" {
            dry_run = true;
        } else if IncidentRef::looks_like(word) && target.is_none() && params.is_empty() {
            target = Some(
                word.parse::<IncidentRef>()
                    .map_err(|e| UsageError::new(e, USAGE_RUN))?,
            );
        } else if let Some((k, v)) = word.split_once('=') {
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(UsageError::new(
                    format!("`{k}` is not a parameter name"),
                    USAGE_RUN,
                ));
            }
            params.push((k.to_string(), v.to_string()));
        } else {
            return Err(UsageError::new(
                format!("`{word}` is not `key=value`; parameters are written like `service=web`"),
                USAGE_RUN,
            ));
        }
    }
    Ok(Command::Run {
        action: action.to_string(),
        target,
        params,
        dry_run,
    })
}

/// `P4`, `p9`: meant as a severity, even though it is not one.
fn looks_like_severity(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 2 && (b[0] == b'P' || b[0] == b'p') && b[1].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> UserText {
        UserText::parse(s, "t").expect("valid text")
    }

    #[test]
    fn open_takes_an_optional_severity_then_the_title() {
        assert_eq!(
            parse("open P1 Checkout API returning 500s"),
            Ok(Command::Open {
                severity: Some(Severity::P1),
                title: text("Checkout API returning 500s"),
                components: vec![],
            })
        );
        assert_eq!(
            parse("open   Checkout   slow"),
            Ok(Command::Open {
                severity: None,
                title: text("Checkout slow"),
                components: vec![],
            })
        );
        assert_eq!(
            parse("open P1 Checkout\n• *Status:* Resolved\u{202E}"),
            Ok(Command::Open {
                severity: Some(Severity::P1),
                title: text("Checkout • *Status:* Resolved"),
                components: vec![],
            }),
            "a title is one line without invisible characters: it cannot forge lines of the root"
        );
    }

    #[test]
    fn open_takes_components_anywhere_and_status_takes_public_before_or_after_the_ref() {
        let c = |s: &str| ComponentName::parse(s).expect("a name");
        assert_eq!(
            parse("open P1 --component checkout Cards --components=search,checkout fail"),
            Ok(Command::Open {
                severity: Some(Severity::P1),
                title: text("Cards fail"),
                components: vec![c("checkout"), c("search")],
            })
        );
        assert!(parse("open P1 --component").is_err());
        assert!(parse("open --component Check!out x").is_err());
        assert!(parse("open --component= x").is_err());
        for typed in [
            "status --public INC-3 cards work again",
            "status INC-3 --public cards work again",
        ] {
            assert_eq!(
                parse(typed),
                Ok(Command::Status {
                    target: IncidentRef::new(3),
                    text: text("cards work again"),
                    public: true,
                }),
                "{typed}"
            );
        }
        assert!(
            parse("status --public").is_err(),
            "a public update needs text"
        );
        assert_eq!(
            parse("components INC-2 checkout, search"),
            Ok(Command::Components {
                target: IncidentRef::new(2),
                components: vec![c("checkout"), c("search")],
            })
        );
        assert_eq!(
            parse("components none"),
            Ok(Command::Components {
                target: None,
                components: vec![],
            })
        );
        assert_eq!(
            parse("component login partial-outage"),
            Ok(Command::ComponentState {
                component: c("login"),
                status: Some(ComponentStatus::PartialOutage),
            })
        );
        assert_eq!(
            parse("component login auto"),
            Ok(Command::ComponentState {
                component: c("login"),
                status: None,
            })
        );
        assert!(parse("component login broken").is_err());
        assert!(parse("component login major_outage now").is_err());
    }

    #[test]
    fn open_without_a_title_or_with_a_bad_severity_is_a_usage_error() {
        assert!(parse("open").is_err());
        assert!(parse("open P1").is_err());
        let err = parse("open P7 db down").expect_err("P7 is not a severity");
        assert!(err.message.contains("P7"));
        assert_eq!(err.usage, USAGE_OPEN);
    }

    #[test]
    fn refs_are_optional_and_must_be_well_formed_when_given() {
        assert_eq!(
            parse("status INC-3 rolled back"),
            Ok(Command::Status {
                target: IncidentRef::new(3),
                text: text("rolled back"),
                public: false,
            })
        );
        assert_eq!(
            parse("status rolled back"),
            Ok(Command::Status {
                target: None,
                text: text("rolled back"),
                public: false,
            })
        );
        assert!(parse("status INC-3x rolled back").is_err());
        assert!(parse("status INC-3").is_err(), "a status needs text");
    }

    #[test]
    fn sev_accepts_exactly_one_severity() {
        assert_eq!(
            parse("sev INC-2 p0"),
            Ok(Command::Sev {
                target: IncidentRef::new(2),
                severity: Severity::P0
            })
        );
        assert!(parse("sev").is_err());
        assert!(parse("sev INC-2 P9").is_err());
        assert!(parse("sev P1 now").is_err());
    }

    #[test]
    fn assign_needs_a_real_slack_mention() {
        assert_eq!(
            parse("assign <@U024BE7LH|bob>"),
            Ok(Command::Assign {
                target: None,
                owner: SlackUserId::parse("U024BE7LH").expect("valid id")
            })
        );
        assert!(parse("assign @bob").is_err());
        assert!(parse("assign <!channel>").is_err());
        assert!(parse("assign").is_err());
    }

    #[test]
    fn resolve_needs_a_summary() {
        assert!(matches!(
            parse("resolve INC-9 rolled back the deploy"),
            Ok(Command::Resolve { .. })
        ));
        assert!(parse("resolve INC-9").is_err());
    }

    #[test]
    fn unknown_subcommands_point_to_help() {
        let err = parse("reboot everything").expect_err("unknown");
        assert!(err.message.contains("reboot"));
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("HELP"), Ok(Command::Help));
        assert_eq!(parse("list"), Ok(Command::List));
    }

    #[test]
    fn silence_takes_a_human_duration() {
        assert_eq!(
            parse("silence INC-4 2h"),
            Ok(Command::Silence {
                target: IncidentRef::new(4),
                duration: std::time::Duration::from_secs(7200)
            })
        );
        assert!(parse("silence").is_err());
        assert!(parse("silence INC-4 forever").is_err());
        assert!(parse("silence 0s").is_err());
    }

    #[test]
    fn run_takes_an_action_an_optional_ref_parameters_and_dry_run() {
        assert_eq!(
            parse("run restart-web INC-3 service=web --dry-run"),
            Ok(Command::Run {
                action: "restart-web".into(),
                target: IncidentRef::new(3),
                params: vec![("service".into(), "web".into())],
                dry_run: true
            })
        );
        assert!(parse("run").is_err());
        assert!(parse("run Restart;ls").is_err());
        assert!(parse("run restart-web web").is_err());
        // Hostile values parse (so the refusal can be audited) but are never trusted here.
        assert!(matches!(
            parse("run restart-web service=$(id)"),
            Ok(Command::Run { .. })
        ));
    }

    #[test]
    fn ack_rejects_trailing_text() {
        assert_eq!(parse("ack"), Ok(Command::Ack { target: None }));
        assert!(parse("ack INC-1 now please").is_err());
    }

    #[test]
    fn maintenance_takes_a_route_a_duration_and_an_optional_reason_or_a_window_number() {
        assert_eq!(
            parse("maintenance start checkout 2h database failover"),
            Ok(Command::Maintenance(Maintenance::Start {
                route: "checkout".into(),
                duration: std::time::Duration::from_secs(7_200),
                reason: UserText::parse("database failover", "reason").ok(),
            }))
        );
        assert_eq!(
            parse("maintenance end #4"),
            Ok(Command::Maintenance(Maintenance::End { id: 4 }))
        );
        assert_eq!(
            parse("maintenance"),
            Ok(Command::Maintenance(Maintenance::List))
        );
        for bad in [
            "maintenance start",
            "maintenance start checkout",
            "maintenance start checkout later",
            "maintenance end",
            "maintenance end 0",
            "maintenance end 4 now",
            "maintenance list all",
            "maintenance stretch checkout",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(Command::Maintenance(Maintenance::List).changes_nothing());
    }

    #[test]
    fn role_postmortem_and_followup_take_a_ref_a_user_and_text() {
        let alice = SlackUserId::parse("U0ALICE").expect("id");
        assert_eq!(
            parse("role Commander INC-3 <@U0ALICE|alice>"),
            Ok(Command::Role {
                role: crate::incident::roles::RoleName::parse("commander").expect("role"),
                target: IncidentRef::new(3),
                user: alice.clone(),
            })
        );
        assert_eq!(
            parse("postmortem inc-9"),
            Ok(Command::Postmortem {
                target: IncidentRef::new(9)
            })
        );
        assert_eq!(
            parse("followup <@U0ALICE> add an alert on replica lag"),
            Ok(Command::FollowUp {
                target: None,
                owner: Some(alice),
                text: UserText::parse("add an alert on replica lag", "follow-up").expect("text"),
            })
        );
        for bad in [
            "role",
            "role commander",
            "role commander alice",
            "role two words <@U0ALICE>",
            "role commander <@U0ALICE> now",
            "postmortem INC-1 please",
            "followup",
            "followup <@U0ALICE>",
            "followup <@nobody> fix it",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
