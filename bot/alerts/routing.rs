//! Which route an alert group takes: where its incident opens, how severe it
//! is, which service it is about, and how many incidents an alert storm may open.
//!
//! Routes are written in the configuration file as `[[alerts.routes]]` tables
//! ([`RawRoute`], read by serde) and validated into [`Routes`] by
//! [`Routes::from_raw`], which reports every problem in one pass, like the rest
//! of the configuration. The first route whose matchers all hold for a group's
//! labels wins; a group no route matches takes the built-in route named
//! `default`. A route with no matchers matches everything, so a last route with
//! `match = []` replaces the default.
//!
//! Matchers follow Alertmanager's: `label=value`, `label!=value`,
//! `label=~regex`, `label!~regex`; regexes must match the whole value; a label
//! that is absent counts as the empty string.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use regex::Regex;
use serde::Deserialize;

use super::is_label_name;
use crate::incident::{ChannelId, Severity};

/// The label that names an alert's severity, unless a route says otherwise.
pub const DEFAULT_SEVERITY_LABEL: &str = "severity";
/// The label that names the affected service, unless a route says otherwise.
pub const DEFAULT_SERVICE_LABEL: &str = "service";
/// The severity of an alert whose severity label is absent or not in the map.
pub const DEFAULT_SEVERITY: Severity = Severity::P2;
/// The alert-storm cap, unless a route says otherwise.
pub const DEFAULT_MAX_NEW_INCIDENTS_PER_MINUTE: u32 = 60;
/// The name of the route taken when no configured route matches.
pub const DEFAULT_ROUTE_NAME: &str = "default";

/// The severity map used when a route has none: the usual Prometheus
/// `severity` values mapped onto P0–P3.
pub fn default_severity_map() -> BTreeMap<String, Severity> {
    [
        ("critical", Severity::P0),
        ("page", Severity::P1),
        ("error", Severity::P1),
        ("warning", Severity::P2),
        ("info", Severity::P3),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One `[[alerts.routes]]` table as written. Every key but `name` is optional;
/// unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RawRoute {
    pub name: String,
    /// Matchers like `team=payments`; all must hold. None: matches everything.
    #[serde(rename = "match", default)]
    pub matchers: Vec<String>,
    pub channel: Option<String>,
    pub severity_label: Option<String>,
    /// Replaces [`default_severity_map`] as a whole when given.
    pub severity_map: Option<BTreeMap<String, String>>,
    pub default_severity: Option<String>,
    pub service_label: Option<String>,
    pub ladder: Option<String>,
    pub auto_resolve: Option<bool>,
    /// Signed so that 0 and negative numbers reach validation and get a clear message.
    pub max_new_incidents_per_minute: Option<i64>,
    /// Names a `[[heartbeats]]` entry: the route's notifications are beats
    /// for it (Alertmanager's always-firing `Watchdog`) and open no incident.
    pub heartbeat: Option<String>,
}

/// How a [`Matcher`] compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    NotEq,
    /// `=~`: the whole value matches the regex.
    Regex,
    /// `!~`: the whole value does not match the regex.
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition on one label, like `severity=~critical|page`.
///
/// A regex matcher always holds its compiled, anchored regex; an equality
/// matcher never has one.
#[derive(Debug, Clone)]
pub struct Matcher {
    label: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

const MATCHER_HINT: &str =
    "write it like team=payments, env!=staging, severity=~critical|page or alertname!~Test.*";

impl Matcher {
    /// Parses `label OP value`. Spaces around the operator are allowed, and the
    /// value may be double-quoted (JSON escapes) to keep spaces at its ends.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let s = text.trim();
        let name_len = s
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let (label, rest) = s.split_at(name_len);
        let rest = rest.trim_start();
        let (op, raw_value) = [
            MatchOp::Regex,
            MatchOp::NotEq,
            MatchOp::NotRegex,
            MatchOp::Eq,
        ]
        .into_iter()
        .find_map(|op| rest.strip_prefix(op.as_str()).map(|v| (op, v)))
        .ok_or_else(|| format!("`{text}` is not a matcher; {MATCHER_HINT}"))?;
        if !is_label_name(label) {
            return Err(format!(
                "`{text}` does not start with a label name; {MATCHER_HINT}"
            ));
        }
        let raw_value = raw_value.trim();
        if raw_value.starts_with('=') {
            return Err(format!(
                "`{text}` has a value starting with `=`, usually a typo (`==`); quote the value if it is meant"
            ));
        }
        let value = unquote(raw_value)
            .ok_or_else(|| format!("`{text}` has a badly quoted value; {MATCHER_HINT}"))?;
        let regex = match op {
            MatchOp::Eq | MatchOp::NotEq => None,
            MatchOp::Regex | MatchOp::NotRegex => Some(anchored_regex(&value)?),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
            value,
            regex,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value compared with, or the regex as written (before anchoring).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The matcher that holds exactly where this one does not (`=` ↔ `!=`,
    /// `=~` ↔ `!~`).
    pub fn negated(&self) -> Matcher {
        Matcher {
            op: match self.op {
                MatchOp::Eq => MatchOp::NotEq,
                MatchOp::NotEq => MatchOp::Eq,
                MatchOp::Regex => MatchOp::NotRegex,
                MatchOp::NotRegex => MatchOp::Regex,
            },
            ..self.clone()
        }
    }

    /// Whether the labels satisfy this matcher. An absent label counts as `""`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::NotEq, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            // Not constructible: `parse` compiles a regex for both regex operators.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.label, self.op, self.value)
    }
}

impl FromStr for Matcher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Matcher::parse(s)
    }
}

/// A value as written, or the string inside double quotes (JSON escapes).
fn unquote(s: &str) -> Option<String> {
    if s.starts_with('"') {
        serde_json::from_str::<String>(s).ok()
    } else {
        Some(s.to_string())
    }
}

/// Compiles `^(?:pattern)$`, as Alertmanager does. The pattern is compiled on
/// its own first, so one like `a)|(b` cannot break out of the anchors.
fn anchored_regex(pattern: &str) -> Result<Regex, String> {
    let bad = |e: regex::Error| {
        format!(
            "`{pattern}` is not a valid regular expression: {}",
            regex_reason(&e)
        )
    };
    Regex::new(pattern).map_err(bad)?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(bad)
}

/// The one-line reason from a regex error (syntax errors come with a diagram).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// All must hold; none matches everything.
    pub matchers: Vec<Matcher>,
    /// Where the incident opens; `None`: the configured incident channel.
    pub channel: Option<ChannelId>,
    pub severity_label: String,
    pub severity_map: BTreeMap<String, Severity>,
    /// For a severity label that is absent or not in the map.
    pub default_severity: Severity,
    pub service_label: String,
    /// The escalation ladder to follow, by name.
    pub ladder: Option<String>,
    /// Resolve the incident when every alert of the group has resolved.
    pub auto_resolve: bool,
    /// The alert-storm cap: at most this many new incidents per minute.
    pub max_new_incidents_per_minute: NonZeroU32,
    /// The heartbeat this route's notifications beat, if any: such a group
    /// never opens an incident (see `crate::usecases::heartbeats`).
    pub heartbeat: Option<String>,
}

impl Route {
    /// The route taken when no configured route matches: every default.
    pub fn default_route() -> Route {
        Route {
            name: DEFAULT_ROUTE_NAME.to_string(),
            matchers: Vec::new(),
            channel: None,
            severity_label: DEFAULT_SEVERITY_LABEL.to_string(),
            severity_map: default_severity_map(),
            default_severity: DEFAULT_SEVERITY,
            service_label: DEFAULT_SERVICE_LABEL.to_string(),
            ladder: None,
            auto_resolve: true,
            max_new_incidents_per_minute: NonZeroU32::new(DEFAULT_MAX_NEW_INCIDENTS_PER_MINUTE)
                .unwrap_or(NonZeroU32::MIN),
            heartbeat: None,
        }
    }

    /// Whether every matcher holds for these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// The severity named by the severity label, looked up in the map (exactly,
    /// else ignoring ASCII case), else the route's default severity.
    pub fn severity_for(&self, labels: &BTreeMap<String, String>) -> Severity {
        let Some(value) = labels
            .get(&self.severity_label)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        else {
            return self.default_severity;
        };
        self.severity_map
            .get(value)
            .or_else(|| {
                self.severity_map
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(value))
                    .map(|(_, s)| s)
            })
            .copied()
            .unwrap_or(self.default_severity)
    }

    /// The affected service, from the service label, if it is there and not empty.
    pub fn service_for<'a>(&self, labels: &'a BTreeMap<String, String>) -> Option<&'a str> {
        labels
            .get(&self.service_label)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// The configured routes, in order, and the default route after them.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
    default: Route,
}

impl Routes {
    /// No configured routes: every group takes the default route.
    pub fn default_only() -> Routes {
        Routes {
            routes: Vec::new(),
            default: Route::default_route(),
        }
    }

    /// Validates the `[[alerts.routes]]` tables. On failure, returns every
    /// problem found as `(key, message)`, the key like
    /// `alerts.routes[1].match[0]` (indices count from 0, as in the file).
    pub fn from_raw(raw: Vec<RawRoute>) -> Result<Routes, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut routes = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, r) in raw.into_iter().enumerate() {
            let before = problems.len();
            let mut problem = |key: &str, message: String| {
                problems.push((format!("alerts.routes[{i}].{key}"), message));
            };

            let name = r.name.trim().to_string();
            if name.is_empty() {
                problem(
                    "name",
                    "a route needs a name, for logs and messages".to_string(),
                );
            } else if name == DEFAULT_ROUTE_NAME {
                problem(
                    "name",
                    format!(
                        "`{DEFAULT_ROUTE_NAME}` is the name of the built-in route taken when none matches; pick another"
                    ),
                );
            } else if let Some(first) = names.get(&name) {
                problem(
                    "name",
                    format!(
                        "`{name}` is already the name of alerts.routes[{first}]; route names must be unique"
                    ),
                );
            } else {
                names.insert(name.clone(), i);
            }

            let mut matchers = Vec::new();
            for (j, text) in r.matchers.iter().enumerate() {
                match Matcher::parse(text) {
                    Ok(m) => matchers.push(m),
                    Err(e) => problem(&format!("match[{j}]"), e),
                }
            }

            let channel = r.channel.as_deref().and_then(|v| {
                let c = ChannelId::parse(v);
                if c.is_none() {
                    problem(
                        "channel",
                        format!(
                            "`{v}` is not a channel ID; use the ID (like C0123ABCDEF) shown at the bottom of the channel's details, not its name"
                        ),
                    );
                }
                c
            });

            let mut label = |key: &str, value: Option<String>, default: &str| {
                let v = value.unwrap_or_else(|| default.to_string());
                if !is_label_name(&v) {
                    problem(
                        key,
                        format!(
                            "`{v}` is not a label name; use letters, digits and _, not starting with a digit"
                        ),
                    );
                }
                v
            };
            let severity_label = label("severity_label", r.severity_label, DEFAULT_SEVERITY_LABEL);
            let service_label = label("service_label", r.service_label, DEFAULT_SERVICE_LABEL);

            let severity_map = match r.severity_map {
                None => default_severity_map(),
                Some(m) => m
                    .into_iter()
                    .filter_map(|(k, v)| match v.parse::<Severity>() {
                        Ok(s) => Some((k, s)),
                        Err(e) => {
                            let key = if is_label_name(&k) {
                                format!("severity_map.{k}")
                            } else {
                                format!("severity_map[{k:?}]")
                            };
                            problem(&key, e);
                            None
                        }
                    })
                    .collect(),
            };

            let default_severity = match r.default_severity {
                None => DEFAULT_SEVERITY,
                Some(v) => v.parse().unwrap_or_else(|e| {
                    problem("default_severity", e);
                    DEFAULT_SEVERITY
                }),
            };

            let ladder = r.ladder.and_then(|l| {
                let l = l.trim().to_string();
                if l.is_empty() {
                    problem(
                        "ladder",
                        "the ladder name is empty; leave the key out for no ladder".to_string(),
                    );
                    None
                } else {
                    Some(l)
                }
            });

            let cap = r
                .max_new_incidents_per_minute
                .unwrap_or(i64::from(DEFAULT_MAX_NEW_INCIDENTS_PER_MINUTE));
            let max_new_incidents_per_minute = u32::try_from(cap)
                .ok()
                .and_then(NonZeroU32::new)
                .unwrap_or_else(|| {
                    problem(
                        "max_new_incidents_per_minute",
                        format!(
                            "{cap} is not a valid cap: the most new incidents per minute must be between 1 and {}",
                            u32::MAX
                        ),
                    );
                    NonZeroU32::MIN
                });

            let heartbeat = r.heartbeat.map(|h| h.trim().to_string());
            if heartbeat.as_deref() == Some("") {
                problem(
                    "heartbeat",
                    "the heartbeat name is empty; leave the key out for a route that opens incidents"
                        .to_string(),
                );
            }

            if problems.len() == before {
                routes.push(Route {
                    name,
                    matchers,
                    channel,
                    severity_label,
                    severity_map,
                    default_severity,
                    service_label,
                    ladder,
                    auto_resolve: r.auto_resolve.unwrap_or(true),
                    max_new_incidents_per_minute,
                    heartbeat,
                });
            }
        }
        if problems.is_empty() {
            Ok(Routes {
                routes,
                default: Route::default_route(),
            })
        } else {
            Err(problems)
        }
    }

    /// The first route whose matchers all hold, else the default route.
    ///
    /// For a notification, pass its common labels merged with its group labels
    /// ([`super::AlertBatch::route_labels`]).
    pub fn pick(&self, labels: &BTreeMap<String, String>) -> &Route {
        self.routes
            .iter()
            .find(|r| r.matches(labels))
            .unwrap_or(&self.default)
    }

    /// The configured routes, in order (without the default route).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route taken when none of the configured ones matches.
    pub fn default_route(&self) -> &Route {
        &self.default
    }

    /// The configured routes before the one named `name` (all of them for
    /// the default route): those that take a group first.
    pub fn before(&self, name: &str) -> &[Route] {
        let i = self
            .routes
            .iter()
            .position(|r| r.name == name)
            .unwrap_or(self.routes.len());
        &self.routes[..i]
    }

    /// The matchers of an Alertmanager silence that mutes what route `name`
    /// takes and nothing an earlier route takes (a maintenance window's
    /// silence): the route's own matchers and the negation of each route
    /// before it. Alertmanager ANDs a silence's matchers, so an earlier route
    /// with several matchers (whose negation is an OR) cannot be left out, and
    /// a silence of everything is never made: `Err` says why then.
    pub fn window_silence(&self, name: &str) -> Result<Vec<Matcher>, String> {
        let Some(own) = self.named(name) else {
            return Err(format!("no alert route is named `{name}` any more"));
        };
        let mut out = own.matchers.clone();
        for earlier in self.before(name) {
            match earlier.matchers.as_slice() {
                [one] => out.push(one.negated()),
                [] => {
                    return Err(format!(
                        "route `{}` before it matches everything, so nothing reaches `{name}`",
                        earlier.name
                    ));
                }
                _ => {
                    return Err(format!(
                        "route `{}` comes before it with several matchers, and a silence cannot leave out only what that route takes (it would mute alerts that route pages for)",
                        earlier.name
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(format!(
                "route `{name}` has no matchers, and a silence of everything is not made"
            ));
        }
        Ok(out)
    }

    /// The route of this name, the default route included.
    pub fn named(&self, name: &str) -> Option<&Route> {
        self.routes
            .iter()
            .chain(std::iter::once(&self.default))
            .find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the routes will sit in `klaxon.toml` once the config embeds them.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        alerts: Section,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        routes: Vec<RawRoute>,
    }

    fn raw(toml_text: &str) -> Vec<RawRoute> {
        toml::from_str::<File>(toml_text)
            .expect("test TOML parses")
            .alerts
            .routes
    }

    fn routes(toml_text: &str) -> Routes {
        Routes::from_raw(raw(toml_text)).expect("valid routes")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matcher(s: &str) -> Matcher {
        Matcher::parse(s).expect("valid matcher")
    }

    const EXAMPLE: &str = r#"
[[alerts.routes]]
name = "payments-critical"
match = ["team=payments", "severity=~critical|page", "env!=staging", "alertname!~Test.*"]
channel = "C0PAYMENTS"
severity_label = "severity"
severity_map = { critical = "P0", page = "P1", error = "P1", warning = "P2", info = "P3" }
default_severity = "P2"
service_label = "service"
ladder = "platform"
auto_resolve = true
max_new_incidents_per_minute = 10

[[alerts.routes]]
name = "payments"
match = ["team=payments"]
auto_resolve = false
max_new_incidents_per_minute = 3
"#;

    #[test]
    fn the_documented_example_parses_into_routes_with_defaults_filled_in() {
        let r = routes(EXAMPLE);
        assert_eq!(r.routes().len(), 2);
        let first = &r.routes()[0];
        assert_eq!(first.name, "payments-critical");
        assert_eq!(first.matchers.len(), 4);
        assert_eq!(
            first.channel.as_ref().map(ChannelId::as_str),
            Some("C0PAYMENTS")
        );
        assert_eq!(first.ladder.as_deref(), Some("platform"));
        assert_eq!(first.severity_map, default_severity_map());

        let second = &r.routes()[1];
        assert_eq!(second.channel, None);
        assert_eq!(second.severity_label, "severity");
        assert_eq!(second.service_label, "service");
        assert_eq!(second.default_severity, Severity::P2);
        assert_eq!(second.severity_map, default_severity_map());
        assert!(!second.auto_resolve);
        assert_eq!(second.max_new_incidents_per_minute.get(), 3);
        assert_eq!(r.default_route().name, "default");
        assert!(r.default_route().auto_resolve);
        assert_eq!(r.default_route().max_new_incidents_per_minute.get(), 60);
    }

    #[test]
    fn the_first_matching_route_wins_and_the_rest_take_the_default() {
        let r = routes(EXAMPLE);
        let critical = labels(&[
            ("alertname", "HighErrorRate"),
            ("team", "payments"),
            ("severity", "critical"),
            ("env", "prod"),
        ]);
        assert_eq!(r.pick(&critical).name, "payments-critical");

        let mut warning = critical.clone();
        warning.insert("severity".into(), "warning".into());
        assert_eq!(r.pick(&warning).name, "payments");

        let mut test_alert = critical.clone();
        test_alert.insert("alertname".into(), "TestAlert".into());
        assert_eq!(r.pick(&test_alert).name, "payments");

        let other_team = labels(&[("team", "search"), ("severity", "critical")]);
        assert_eq!(r.pick(&other_team).name, "default");
        assert_eq!(Routes::default_only().pick(&critical).name, "default");
    }

    #[test]
    fn each_operator_compares_the_label_as_alertmanager_does() {
        let l = labels(&[("team", "payments"), ("env", "prod")]);
        assert!(matcher("team=payments").matches(&l));
        assert!(!matcher("team=search").matches(&l));
        assert!(matcher("env!=staging").matches(&l));
        assert!(!matcher("env!=prod").matches(&l));
        assert!(matcher("team=~pay.*|search").matches(&l));
        assert!(!matcher("team=~search").matches(&l));
        assert!(matcher("env!~stag.*").matches(&l));
        assert!(!matcher("env!~pr.d").matches(&l));
        assert_eq!(matcher("env!~pr.d").op(), MatchOp::NotRegex);
        assert_eq!(matcher("env!~pr.d").label(), "env");
        assert_eq!(matcher("env!~pr.d").value(), "pr.d");
    }

    #[test]
    fn regexes_must_match_the_whole_value() {
        let l = labels(&[("severity", "critical")]);
        assert!(!matcher("severity=~crit").matches(&l));
        assert!(!matcher("severity=~itical").matches(&l));
        assert!(matcher("severity=~crit.*").matches(&l));
        assert!(matcher("severity!~crit").matches(&l));
        // Alternatives stay inside the anchors.
        assert!(!matcher("severity=~crit|page").matches(&l));
    }

    #[test]
    fn a_regex_cannot_break_out_of_its_anchors() {
        let err = Matcher::parse("severity=~a)|(b").expect_err("unbalanced");
        assert!(err.contains("not a valid regular expression"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn an_absent_label_counts_as_the_empty_string() {
        let none = labels(&[("team", "payments")]);
        assert!(matcher("env=").matches(&none));
        assert!(!matcher("env!=").matches(&none));
        assert!(matcher("env!=staging").matches(&none));
        assert!(!matcher("env=staging").matches(&none));
        assert!(matcher("env=~|dev").matches(&none));
        assert!(matcher("env!~.+").matches(&none));
        assert!(!matcher("env=~.+").matches(&none));
        let some = labels(&[("env", "prod")]);
        assert!(!matcher("env=").matches(&some));
        assert!(matcher("env!=").matches(&some));
    }

    #[test]
    fn matchers_allow_spaces_and_quoted_values() {
        let l = labels(&[("summary", " padded "), ("team", "payments")]);
        assert!(matcher(" team = payments ").matches(&l));
        assert!(matcher(r#"summary=" padded ""#).matches(&l));
        assert!(matcher(r#"team=~"pay.*""#).matches(&l));
        assert_eq!(matcher("team=payments").to_string(), r#"team="payments""#);
        assert!(matcher(r#"team="=payments""#).matches(&labels(&[("team", "=payments")])));
        for bad in [
            "team",
            "=payments",
            "team==payments",
            "team~payments",
            "2team=x",
            "team-name=x",
            r#"team="unterminated"#,
        ] {
            let err = Matcher::parse(bad).map(|m| m.to_string());
            assert!(err.is_err(), "{bad} should be rejected, got {err:?}");
        }
    }

    #[test]
    fn severities_come_from_the_map_else_the_default() {
        let r = Route::default_route();
        assert_eq!(
            r.severity_for(&labels(&[("severity", "critical")])),
            Severity::P0
        );
        assert_eq!(
            r.severity_for(&labels(&[("severity", "page")])),
            Severity::P1
        );
        assert_eq!(
            r.severity_for(&labels(&[("severity", "error")])),
            Severity::P1
        );
        assert_eq!(
            r.severity_for(&labels(&[("severity", "warning")])),
            Severity::P2
        );
        assert_eq!(
            r.severity_for(&labels(&[("severity", "info")])),
            Severity::P3
        );
        assert_eq!(
            r.severity_for(&labels(&[("severity", "CRITICAL")])),
            Severity::P0
        );
        assert_eq!(
            r.severity_for(&labels(&[("severity", "bogus")])),
            Severity::P2
        );
        assert_eq!(r.severity_for(&labels(&[])), Severity::P2);

        let custom = routes(
            r#"
[[alerts.routes]]
name = "custom"
severity_label = "priority"
severity_map = { high = "p1" }
default_severity = "P3"
"#,
        );
        let c = &custom.routes()[0];
        assert_eq!(
            c.severity_for(&labels(&[("priority", "high")])),
            Severity::P1
        );
        // A given map replaces the default one.
        assert_eq!(
            c.severity_for(&labels(&[("priority", "critical")])),
            Severity::P3
        );
        assert_eq!(
            c.severity_for(&labels(&[("severity", "critical")])),
            Severity::P3
        );
    }

    #[test]
    fn the_service_comes_from_the_service_label() {
        let r = Route::default_route();
        let l = labels(&[("service", "checkout"), ("app", "web")]);
        assert_eq!(r.service_for(&l), Some("checkout"));
        assert_eq!(r.service_for(&labels(&[("service", " ")])), None);
        assert_eq!(r.service_for(&labels(&[])), None);
        let mut app = Route::default_route();
        app.service_label = "app".into();
        assert_eq!(app.service_for(&l), Some("web"));
    }

    #[test]
    fn every_routing_problem_is_reported_at_once() {
        let problems = Routes::from_raw(raw(r##"
[[alerts.routes]]
name = "a"
match = ["team=payments", "team payments", "severity=~crit(", "2x=y"]
channel = "#payments"

[[alerts.routes]]
name = "a"
severity_map = { critical = "P5", page = "P1" }
default_severity = "urgent"
max_new_incidents_per_minute = 0

[[alerts.routes]]
name = "default"
severity_label = "sev-level"
ladder = " "

[[alerts.routes]]
name = " "
max_new_incidents_per_minute = -4
"##))
        .expect_err("invalid routes");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alerts.routes[0].match[1]",
                "alerts.routes[0].match[2]",
                "alerts.routes[0].match[3]",
                "alerts.routes[0].channel",
                "alerts.routes[1].name",
                "alerts.routes[1].severity_map.critical",
                "alerts.routes[1].default_severity",
                "alerts.routes[1].max_new_incidents_per_minute",
                "alerts.routes[2].name",
                "alerts.routes[2].severity_label",
                "alerts.routes[2].ladder",
                "alerts.routes[3].name",
                "alerts.routes[3].max_new_incidents_per_minute",
            ]
        );
        let message = |key: &str| {
            problems
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, m)| m.as_str())
                .unwrap_or_default()
        };
        assert!(message("alerts.routes[0].match[1]").contains("is not a matcher"));
        assert!(message("alerts.routes[0].match[2]").contains("not a valid regular expression"));
        assert!(message("alerts.routes[0].channel").contains("not a channel ID"));
        assert!(message("alerts.routes[1].name").contains("already the name of alerts.routes[0]"));
        assert!(message("alerts.routes[1].severity_map.critical").contains("P5"));
        assert!(message("alerts.routes[1].max_new_incidents_per_minute").contains("between 1 and"));
        assert!(message("alerts.routes[2].name").contains("built-in route"));
        for (key, msg) in &problems {
            assert!(!msg.contains('\n'), "{key}: {msg}");
        }
    }

    #[test]
    fn a_route_without_matchers_catches_everything() {
        let r = routes("[[alerts.routes]]\nname = \"catch-all\"\nchannel = \"C0ALERTS\"\n");
        assert_eq!(r.pick(&labels(&[])).name, "catch-all");
        assert_eq!(r.pick(&labels(&[("team", "x")])).name, "catch-all");
    }

    fn routes_named(list: &[(&str, &[&str])]) -> Routes {
        Routes::from_raw(
            list.iter()
                .map(|(name, m)| RawRoute {
                    name: (*name).into(),
                    matchers: m.iter().map(|s| s.to_string()).collect(),
                    ..RawRoute::default()
                })
                .collect(),
        )
        .expect("valid routes")
    }

    fn shown(m: &[Matcher]) -> Vec<String> {
        m.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_window_silence_leaves_out_what_earlier_routes_take() {
        let r = routes_named(&[
            ("watchdog", &["alertname=Watchdog"]),
            ("payments", &["team=~pay.*"]),
            ("shop", &["service=shop"]),
        ]);
        assert_eq!(
            shown(&r.window_silence("shop").expect("a silence")),
            [
                r#"service="shop""#,
                r#"alertname!="Watchdog""#,
                r#"team!~"pay.*""#
            ]
        );
        assert_eq!(
            shown(&r.window_silence("watchdog").expect("a silence")),
            [r#"alertname="Watchdog""#]
        );
    }

    #[test]
    fn no_window_silence_when_an_earlier_route_cannot_be_left_out_or_nothing_narrows_it() {
        let r = routes_named(&[
            ("payments", &["team=payments", "severity=critical"]),
            ("shop", &["service=shop"]),
        ]);
        let why = r.window_silence("shop").expect_err("no silence");
        assert!(
            why.contains("route `payments` comes before it with several matchers"),
            "{why}"
        );
        let why = routes_named(&[])
            .window_silence("default")
            .expect_err("no silence");
        assert!(why.contains("route `default` has no matchers"), "{why}");
    }
}
