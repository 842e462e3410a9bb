//! Escalation: who gets paged, when, until somebody acknowledges.
//!
//! A [`Ladder`] is an ordered list of levels (on-call engineer → team lead →
//! manager, as in the runbooks); each level names whom to page and how long to
//! wait for an acknowledgement before the next. The whole ladder may repeat.
//! Severity picks the ladder. Nothing here does I/O: the job that pages one
//! level and schedules the next is a use case (`crate::usecases::escalate`).
//!
//! - [`schedule`]: rotations and overrides: who is on call at an instant.

pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::incident::{Severity, SlackUserId};
use schedule::{Override, Schedule};

/// Whom a level pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(SlackUserId),
    /// A Slack user group (`S…`), mentioned in the thread.
    Group(String),
    /// Whoever is on call in this schedule when the level fires.
    Schedule(String),
}

impl Target {
    /// `user:U123`, `group:S123`, `schedule:primary`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` must be user:U…, group:S… or schedule:NAME"))?;
        match kind {
            "user" => SlackUserId::parse(value)
                .map(Target::User)
                .ok_or_else(|| format!("`{value}` is not a Slack user ID (U… or W…)")),
            "group" => {
                let ok = value.len() >= 3
                    && value.starts_with('S')
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if ok {
                    Ok(Target::Group(value.to_string()))
                } else {
                    Err(format!("`{value}` is not a Slack user group ID (S…)"))
                }
            }
            "schedule" if !value.is_empty() => Ok(Target::Schedule(value.to_string())),
            _ => Err(format!("`{s}` must be user:U…, group:S… or schedule:NAME")),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::User(u) => write!(f, "user:{u}"),
            Target::Group(g) => write!(f, "group:{g}"),
            Target::Schedule(s) => write!(f, "schedule:{s}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Level {
    /// What the thread calls this level ("on-call engineer", "team lead").
    pub name: String,
    pub targets: Vec<Target>,
    /// How long to wait for an acknowledgement before the next level.
    pub wait: Duration,
}

#[derive(Debug, Clone)]
pub struct Ladder {
    pub name: String,
    pub levels: Vec<Level>,
    /// How many times the whole ladder runs (1: once).
    pub repeat: u32,
}

/// Where step `n` of a ladder falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 0-based pass through the ladder.
    pub cycle: u32,
    /// 0-based level within the pass.
    pub level: usize,
}

impl Ladder {
    /// How many pages the ladder sends at most.
    pub fn total_steps(&self) -> u32 {
        u32::try_from(self.levels.len())
            .unwrap_or(u32::MAX)
            .saturating_mul(self.repeat)
    }

    /// The level step `n` pages, or `None` when the ladder is exhausted.
    pub fn position(&self, step: u32) -> Option<Position> {
        if step >= self.total_steps() {
            return None;
        }
        let per_cycle = u32::try_from(self.levels.len()).ok()?;
        Some(Position {
            cycle: step / per_cycle,
            level: usize::try_from(step % per_cycle).ok()?,
        })
    }

    pub fn level(&self, step: u32) -> Option<&Level> {
        self.position(step).map(|p| &self.levels[p.level])
    }
}

/// Ladders, schedules and which severity uses which ladder.
#[derive(Debug, Clone, Default)]
pub struct EscalationSettings {
    pub ladders: BTreeMap<String, Ladder>,
    pub schedules: BTreeMap<String, Schedule>,
    /// Ladder name per severity (P0..P3); `None`: that severity pages nobody.
    pub by_severity: [Option<String>; 4],
}

impl EscalationSettings {
    pub fn ladder_for(&self, severity: Severity) -> Option<&Ladder> {
        let i = Severity::ALL.iter().position(|s| *s == severity)?;
        self.by_severity[i]
            .as_ref()
            .and_then(|name| self.ladders.get(name))
    }

    pub fn ladder(&self, name: &str) -> Option<&Ladder> {
        self.ladders.get(name)
    }
}

fn one() -> u32 {
    1
}
fn utc() -> String {
    "UTC".into()
}
fn week() -> String {
    "1w".into()
}

/// `[escalation]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
pub struct RawEscalation {
    #[serde(default)]
    ladders: Vec<RawLadder>,
    #[serde(default)]
    schedules: Vec<RawSchedule>,
    /// `P0 = "default"`, … `P3 = "none"`.
    #[serde(default)]
    severities: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RawLadder {
    name: String,
    #[serde(default = "one")]
    repeat: u32,
    #[serde(default)]
    levels: Vec<RawLevel>,
}

#[derive(Debug, Deserialize)]
struct RawLevel {
    #[serde(default)]
    name: Option<String>,
    notify: Vec<String>,
    wait: String,
}

#[derive(Debug, Deserialize)]
struct RawSchedule {
    name: String,
    #[serde(default = "utc")]
    timezone: String,
    #[serde(default)]
    rotation: Vec<String>,
    #[serde(default = "week")]
    period: String,
    handoff: String,
    #[serde(default)]
    overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
struct RawOverride {
    user: String,
    start: String,
    end: String,
}

impl RawEscalation {
    /// Validates everything; each problem is `(key, message)`.
    pub fn validate(self) -> Result<EscalationSettings, Vec<(String, String)>> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut schedules = BTreeMap::new();
        for (i, raw) in self.schedules.into_iter().enumerate() {
            let key = format!("escalation.schedules[{i}]");
            match build_schedule(raw, &key) {
                Ok(s) => {
                    if schedules.insert(s.name.clone(), s).is_some() {
                        problems.push((
                            format!("{key}.name"),
                            "two schedules share this name".into(),
                        ));
                    }
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        let mut ladders = BTreeMap::new();
        for (i, raw) in self.ladders.into_iter().enumerate() {
            let key = format!("escalation.ladders[{i}]");
            let mut levels = Vec::new();
            if raw.levels.is_empty() {
                problems.push((
                    format!("{key}.levels"),
                    "a ladder needs at least one level".into(),
                ));
            }
            if raw.repeat == 0 || raw.repeat > 10 {
                problems.push((format!("{key}.repeat"), "must be from 1 to 10".into()));
            }
            for (j, level) in raw.levels.into_iter().enumerate() {
                let lkey = format!("{key}.levels[{j}]");
                let mut targets = Vec::new();
                if level.notify.is_empty() {
                    problems.push((
                        format!("{lkey}.notify"),
                        "name at least one user:, group: or schedule: target".into(),
                    ));
                }
                for (k, t) in level.notify.iter().enumerate() {
                    match Target::parse(t) {
                        Ok(Target::Schedule(name)) if !schedules.contains_key(&name) => problems
                            .push((
                                format!("{lkey}.notify[{k}]"),
                                format!("no schedule is named `{name}`"),
                            )),
                        Ok(t) => targets.push(t),
                        Err(e) => problems.push((format!("{lkey}.notify[{k}]"), e)),
                    }
                }
                let wait = match crate::time::parse_duration(&level.wait) {
                    Ok(d) => d,
                    Err(e) => {
                        problems.push((format!("{lkey}.wait"), e));
                        Duration::from_secs(60)
                    }
                };
                levels.push(Level {
                    name: level.name.unwrap_or_else(|| format!("level {}", j + 1)),
                    targets,
                    wait,
                });
            }
            let ladder = Ladder {
                name: raw.name.clone(),
                levels,
                repeat: raw.repeat.max(1),
            };
            if ladders.insert(raw.name, ladder).is_some() {
                problems.push((format!("{key}.name"), "two ladders share this name".into()));
            }
        }
        let mut by_severity: [Option<String>; 4] = Default::default();
        if ladders.contains_key("default") {
            // The runbooks page for P0–P2; P3 waits for the next business day.
            for s in [Severity::P0, Severity::P1, Severity::P2] {
                by_severity[s as usize] = Some("default".into());
            }
        }
        for (sev, ladder) in self.severities {
            let key = format!("escalation.severities.{sev}");
            match sev.parse::<Severity>() {
                Ok(s) if ladder == "none" => by_severity[s as usize] = None,
                Ok(s) if ladders.contains_key(&ladder) => by_severity[s as usize] = Some(ladder),
                Ok(_) => problems.push((
                    key,
                    format!("no ladder is named `{ladder}` (or write \"none\")"),
                )),
                Err(e) => problems.push((key, e)),
            }
        }
        if problems.is_empty() {
            Ok(EscalationSettings {
                ladders,
                schedules,
                by_severity,
            })
        } else {
            Err(problems)
        }
    }
}

fn build_schedule(raw: RawSchedule, key: &str) -> Result<Schedule, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let tz = match jiff::tz::TimeZone::get(&raw.timezone) {
        Ok(tz) => tz,
        Err(_) => {
            problems.push((
                format!("{key}.timezone"),
                format!(
                    "`{}` is not a time zone; use an IANA name like \"Europe/Berlin\"",
                    raw.timezone
                ),
            ));
            jiff::tz::TimeZone::UTC
        }
    };
    let mut rotation = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, u) in raw.rotation.iter().enumerate() {
        match SlackUserId::parse(u) {
            Some(id) => {
                if !seen.insert(id.clone()) {
                    problems.push((
                        format!("{key}.rotation[{i}]"),
                        format!("{u} is in the rotation twice"),
                    ));
                }
                rotation.push(id)
            }
            None => problems.push((
                format!("{key}.rotation[{i}]"),
                format!("`{u}` is not a Slack user ID"),
            )),
        }
    }
    let period = schedule::parse_period(&raw.period)
        .map_err(|e| problems.push((format!("{key}.period"), e)));
    let handoff = schedule::parse_local(&raw.handoff, &tz)
        .map_err(|e| problems.push((format!("{key}.handoff"), e)));
    let mut overrides = Vec::new();
    for (i, o) in raw.overrides.iter().enumerate() {
        let okey = format!("{key}.overrides[{i}]");
        let user = SlackUserId::parse(&o.user);
        let start = schedule::parse_local(&o.start, &tz);
        let end = schedule::parse_local(&o.end, &tz);
        match (user, start, end) {
            (Some(user), Ok(start), Ok(end)) if start < end => overrides.push(Override {
                user,
                start: start.timestamp(),
                end: end.timestamp(),
            }),
            (None, _, _) => problems.push((
                format!("{okey}.user"),
                format!("`{}` is not a Slack user ID", o.user),
            )),
            (_, Err(e), _) => problems.push((format!("{okey}.start"), e)),
            (_, _, Err(e)) => problems.push((format!("{okey}.end"), e)),
            _ => problems.push((okey, "end must be after start".into())),
        }
    }
    match (period, handoff, problems.is_empty()) {
        (Ok(period), Ok(handoff), true) => Ok(Schedule {
            name: raw.name,
            tz,
            rotation,
            period,
            handoff,
            overrides,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawEscalation {
        toml::from_str(toml_text).expect("valid toml")
    }

    const RUNBOOK: &str = r#"
        [[schedules]]
        name = "primary"
        timezone = "Europe/Berlin"
        rotation = ["U0ALICE", "U0BOB"]
        handoff = "2026-01-05T09:00"

        [[ladders]]
        name = "default"
        repeat = 2
        levels = [
          { name = "on-call engineer", notify = ["schedule:primary"], wait = "30m" },
          { name = "team lead", notify = ["user:U0LEAD"], wait = "30m" },
          { name = "engineering manager", notify = ["group:S0MANAGERS"], wait = "1h" },
        ]
    "#;

    #[test]
    fn the_runbook_ladder_maps_steps_to_levels_and_repeats() {
        let e = raw(RUNBOOK).validate().expect("valid");
        let ladder = e.ladder_for(Severity::P1).expect("P1 pages");
        assert_eq!(ladder.total_steps(), 6);
        assert_eq!(ladder.position(0), Some(Position { cycle: 0, level: 0 }));
        assert_eq!(ladder.position(2), Some(Position { cycle: 0, level: 2 }));
        assert_eq!(ladder.position(3), Some(Position { cycle: 1, level: 0 }));
        assert_eq!(ladder.position(6), None);
        assert_eq!(ladder.level(1).map(|l| l.name.as_str()), Some("team lead"));
        assert!(
            e.ladder_for(Severity::P3).is_none(),
            "P3 waits for business hours"
        );
    }

    #[test]
    fn severities_can_choose_another_ladder_or_none() {
        let text = format!("{RUNBOOK}\n[severities]\nP2 = \"none\"\nP3 = \"default\"\n");
        let e = raw(&text).validate().expect("valid");
        assert!(e.ladder_for(Severity::P2).is_none());
        assert!(e.ladder_for(Severity::P3).is_some());
    }

    #[test]
    fn every_escalation_problem_is_reported_with_its_key() {
        let text = r#"
            [[schedules]]
            name = "primary"
            timezone = "Mars/Olympus"
            rotation = ["bob", "U0A", "U0A"]
            period = "0d"
            handoff = "soon"

            [[ladders]]
            name = "default"
            repeat = 0
            levels = [{ notify = ["schedule:secondary", "user:nobody", "pager:1"], wait = "later" }]

            [severities]
            P9 = "default"
            P1 = "missing"
        "#;
        let problems = raw(text).validate().expect_err("invalid");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        for expected in [
            "escalation.schedules[0].timezone",
            "escalation.schedules[0].rotation[0]",
            "escalation.schedules[0].rotation[2]",
            "escalation.schedules[0].period",
            "escalation.schedules[0].handoff",
            "escalation.ladders[0].repeat",
            "escalation.ladders[0].levels[0].notify[0]",
            "escalation.ladders[0].levels[0].notify[1]",
            "escalation.ladders[0].levels[0].notify[2]",
            "escalation.ladders[0].levels[0].wait",
            "escalation.severities.P9",
            "escalation.severities.P1",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:#?}");
        }
    }

    #[test]
    fn targets_parse_only_known_shapes() {
        assert_eq!(
            Target::parse("user:U0ALICE"),
            Ok(Target::User(SlackUserId::parse("U0ALICE").expect("id")))
        );
        assert_eq!(
            Target::parse("group:S0OPS"),
            Ok(Target::Group("S0OPS".into()))
        );
        assert_eq!(
            Target::parse("schedule:primary"),
            Ok(Target::Schedule("primary".into()))
        );
        assert!(Target::parse("group:<!channel>").is_err());
        assert!(Target::parse("U0ALICE").is_err());
    }
}
