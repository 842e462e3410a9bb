//! The catalog of approved actions (`[[actions]]` in the config).
//!
//! `klaxon check-config` rejects an unsafe or incomplete entry: an unknown back
//! end, a parameter without an enum or a pattern, a pattern loose enough to let
//! shell metacharacters, option flags or path traversal through, a placeholder
//! naming no parameter, and whatever the back end itself refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::{Backend, Configured, Step, Values, command, docker, http};
use crate::escalation::Target;

/// Every back end Klaxon knows: a new one is a module of `executor` and a line here.
pub fn backends() -> Vec<Arc<dyn Backend>> {
    vec![
        Arc::new(http::HttpBackend),
        Arc::new(docker::DockerBackend),
        Arc::new(command::CommandBackend),
    ]
}

/// A catalog entry as written.
#[derive(Debug, Clone, Deserialize)]
pub struct RawAction {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: String,
    /// Who may run it: `user:U…`, `group:S…`, `schedule:NAME`.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Who may approve (default: the same as `allowed`).
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
    /// Whether a second person must approve (default: unless the action is read-only).
    #[serde(default)]
    pub approval: Option<bool>,
    #[serde(default)]
    pub approval_expiry: Option<String>,
    /// Runs at once on the same target (default 1).
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub params: Vec<RawParam>,
    /// Extra secret patterns to redact from this action's output.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Back-end settings (`url`, `container`, `argv` …).
    #[serde(flatten)]
    pub settings: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawParam {
    pub name: String,
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
}

/// How a parameter's value is checked.
#[derive(Debug, Clone)]
pub enum Rule {
    OneOf(Vec<String>),
    /// Anchored: the whole value must match.
    Pattern(Regex),
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub rule: Rule,
    pub default: Option<String>,
}

impl Param {
    pub fn accepts(&self, value: &str) -> bool {
        // Defence in depth: whatever the rule, no control characters and no option flags.
        if value.is_empty() || value.starts_with('-') || value.chars().any(char::is_control) {
            return false;
        }
        match &self.rule {
            Rule::OneOf(values) => values.iter().any(|v| v == value),
            Rule::Pattern(re) => re.is_match(value),
        }
    }

    pub fn explain(&self) -> String {
        match &self.rule {
            Rule::OneOf(values) => format!("one of {}", values.join(", ")),
            Rule::Pattern(re) => format!("matching `{}`", re.as_str()),
        }
    }
}

/// An approved action.
#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub description: String,
    /// The back end's name (`http`, `docker`, `command`).
    pub kind: &'static str,
    /// The back end's settings, read once at config load.
    pub backend: Arc<dyn Configured>,
    pub allowed: Vec<Target>,
    pub approvers: Vec<Target>,
    pub approval: bool,
    pub approval_expiry: Duration,
    pub concurrency: u32,
    pub params: Vec<Param>,
    pub redact: Vec<Regex>,
    pub read_only: bool,
}

/// Why parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Action {
    /// Checks `key=value` pairs against the parameters; fills in defaults.
    pub fn values(&self, given: &[(String, String)]) -> Result<Values, Refusal> {
        let mut values = Values::new();
        for (k, v) in given {
            let Some(p) = self.params.iter().find(|p| &p.name == k) else {
                return Err(Refusal(format!(
                    "`{}` takes no parameter `{k}`{}",
                    self.name,
                    if self.params.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it takes {})",
                            self.params
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                )));
            };
            if !p.accepts(v) {
                return Err(Refusal(format!(
                    "`{k}={v}` is not allowed: {k} must be {}",
                    p.explain()
                )));
            }
            if values.insert(k.clone(), v.clone()).is_some() {
                return Err(Refusal(format!("`{k}` is given twice")));
            }
        }
        for p in &self.params {
            if !values.contains_key(&p.name) {
                match &p.default {
                    Some(d) => {
                        values.insert(p.name.clone(), d.clone());
                    }
                    None => {
                        return Err(Refusal(format!(
                            "`{}` needs `{}=…` ({})",
                            self.name,
                            p.name,
                            p.explain()
                        )));
                    }
                }
            }
        }
        Ok(values)
    }

    pub fn prepare(&self, values: &Values) -> Result<Box<dyn Step>, Refusal> {
        self.backend.prepare(values).map_err(Refusal)
    }
}

/// Values a parameter pattern must never accept.
const HOSTILE: &[&str] = &[
    "web; rm -rf /",
    "$(id)",
    "`id`",
    "../../etc/passwd",
    "a b",
    "a|b",
    "a&b",
    "a>b",
    "a\nb",
    "--help",
];

/// The catalog: every action by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub actions: BTreeMap<String, Action>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// Validates every entry; each problem is (key, message).
    pub fn from_raw(raw: Vec<RawAction>) -> Result<Catalog, Vec<(String, String)>> {
        let known = backends();
        let mut problems = Vec::new();
        let mut actions = BTreeMap::new();
        let name_shape = Regex::new("^[a-z0-9][a-z0-9_-]{0,39}$").ok();
        for (i, a) in raw.into_iter().enumerate() {
            // Problems name the action as people know it; by position when it has no name.
            let key = if a.name.trim().is_empty() {
                format!("actions[{i}]")
            } else {
                format!("actions.{}", a.name)
            };
            let mut p = |k: &str, m: String| problems.push((format!("{key}.{k}"), m));
            if !name_shape.as_ref().is_some_and(|re| re.is_match(&a.name)) {
                p(
                    "name",
                    format!(
                        "`{}` must be lower-case letters, digits, - or _ (at most 40)",
                        a.name
                    ),
                );
            }
            let Some(backend): Option<Arc<dyn Backend>> =
                known.iter().find(|b| b.kind() == a.kind).cloned()
            else {
                p(
                    "kind",
                    format!(
                        "`{}` is not a back end; use {}",
                        a.kind,
                        known
                            .iter()
                            .map(|b| b.kind())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                continue;
            };
            let mut params = Vec::new();
            let mut seen = BTreeSet::new();
            for (j, rp) in a.params.iter().enumerate() {
                let pk = format!("params[{j}]");
                if !seen.insert(rp.name.clone()) {
                    p(&pk, format!("`{}` is declared twice", rp.name));
                }
                let rule = match (&rp.allowed, &rp.pattern) {
                    (Some(values), None) if !values.is_empty() => {
                        if let Some(bad) = values.iter().find(|v| {
                            v.is_empty()
                                || v.starts_with('-')
                                || v.chars()
                                    .any(|c| c.is_control() || "$`;|&<>\\\"' ".contains(c))
                        }) {
                            p(
                                &format!("{pk}.allowed"),
                                format!("`{bad}` is not a safe value"),
                            );
                        }
                        Rule::OneOf(values.clone())
                    }
                    (None, Some(pattern)) => match Regex::new(&format!("^(?:{pattern})$")) {
                        Ok(re) => {
                            if let Some(h) = HOSTILE.iter().find(|h| re.is_match(h)) {
                                p(
                                    &format!("{pk}.pattern"),
                                    format!(
                                        "`{pattern}` is unsafe: it accepts {h:?}; allow only the characters the value needs"
                                    ),
                                );
                            }
                            Rule::Pattern(re)
                        }
                        Err(e) => {
                            p(
                                &format!("{pk}.pattern"),
                                format!("not a regular expression: {e}"),
                            );
                            continue;
                        }
                    },
                    _ => {
                        p(
                            &pk,
                            format!(
                                "`{}` needs exactly one of `allowed = [...]` or `pattern = \"...\"`",
                                rp.name
                            ),
                        );
                        continue;
                    }
                };
                let param = Param {
                    name: rp.name.clone(),
                    rule,
                    default: rp.default.clone(),
                };
                if let Some(d) = &param.default
                    && !param.accepts(d)
                {
                    p(
                        &format!("{pk}.default"),
                        format!("`{d}` does not pass the parameter's own rule"),
                    );
                }
                params.push(param);
            }
            let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
            let configured = match backend.configure(&a.settings, &names) {
                Ok(c) => Some(c),
                Err(problems) => {
                    for (k, m) in problems {
                        p(&k, m);
                    }
                    None
                }
            };
            let mut principals = |list: &[String], what: &str| -> Vec<Target> {
                list.iter()
                    .enumerate()
                    .filter_map(|(j, s)| match Target::parse(s) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            problems.push((format!("{key}.{what}[{j}]"), e));
                            None
                        }
                    })
                    .collect()
            };
            let allowed = principals(&a.allowed, "allowed");
            let approvers = match &a.approvers {
                Some(list) => principals(list, "approvers"),
                None => allowed.clone(),
            };
            if a.allowed.is_empty() {
                problems.push((
                    format!("{key}.allowed"),
                    "say who may run it (user:U…, group:S… or schedule:NAME); an action nobody may run is a mistake".into(),
                ));
            }
            let read_only = configured.as_ref().is_some_and(|c| c.read_only());
            let approval = a.approval.unwrap_or(!read_only);
            if !read_only && a.approval == Some(false) {
                // Allowed, but loudly: a change to production without a second pair of eyes.
                tracing::warn!(action = %a.name, "action changes things and needs no approval");
            }
            if approval && approvers.is_empty() && !a.allowed.is_empty() {
                problems.push((
                    format!("{key}.approvers"),
                    "an action that needs approval needs approvers".into(),
                ));
            }
            let approval_expiry = match a
                .approval_expiry
                .as_deref()
                .map(crate::time::parse_duration)
            {
                None => Duration::from_secs(15 * 60),
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    problems.push((format!("{key}.approval_expiry"), e));
                    Duration::from_secs(15 * 60)
                }
            };
            let mut redact = Vec::new();
            for (j, r) in a.redact.iter().enumerate() {
                match Regex::new(r) {
                    Ok(re) => redact.push(re),
                    Err(e) => problems.push((
                        format!("{key}.redact[{j}]"),
                        format!("not a regular expression: {e}"),
                    )),
                }
            }
            let Some(configured) = configured else {
                continue;
            };
            let action = Action {
                name: a.name.clone(),
                description: a.description,
                kind: backend.kind(),
                backend: configured,
                allowed,
                approvers,
                approval,
                approval_expiry,
                concurrency: a.concurrency.unwrap_or(1).max(1),
                params,
                redact,
                read_only,
            };
            if actions.insert(a.name.clone(), action).is_some() {
                problems.push((
                    format!("{key}.name"),
                    format!("`{}` is defined twice", a.name),
                ));
            }
        }
        if problems.is_empty() {
            Ok(Catalog { actions })
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Catalog, Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct F {
            actions: Vec<RawAction>,
        }
        let f: F = toml::from_str(text).expect("toml");
        Catalog::from_raw(f.actions)
    }

    const GOOD: &str = r#"
        [[actions]]
        name = "restart-web"
        description = "Restart a web container"
        kind = "docker"
        operation = "restart"
        container = "codexos-{service}"
        allowed = ["group:S0ONCALL", "user:U0ALICE"]
        params = [{ name = "service", allowed = ["backend", "frontend"] }]

        [[actions]]
        name = "check-api"
        kind = "http"
        url = "http://127.0.0.1:8001/health"
        allowed = ["schedule:primary"]
    "#;

    #[test]
    fn a_restart_needs_approval_and_a_check_does_not() {
        let c = parse(GOOD).expect("valid");
        assert!(c.get("restart-web").expect("action").approval);
        assert!(!c.get("check-api").expect("action").approval);
    }

    #[test]
    fn parameter_values_must_pass_their_rule_and_nothing_else_gets_through() {
        let c = parse(GOOD).expect("valid");
        let a = c.get("restart-web").expect("action");
        let ok = a
            .values(&[("service".into(), "backend".into())])
            .expect("valid");
        assert_eq!(ok.get("service").map(String::as_str), Some("backend"));
        for bad in [
            "web; rm -rf /",
            "$(id)",
            "../../etc/passwd",
            "backend ",
            "-rf",
            "",
        ] {
            assert!(
                a.values(&[("service".into(), bad.into())]).is_err(),
                "{bad:?} got through"
            );
        }
        assert!(
            a.values(&[("host".into(), "x".into())]).is_err(),
            "unknown parameter"
        );
        assert!(a.values(&[]).is_err(), "missing parameter");
    }

    #[test]
    fn unsafe_and_incomplete_entries_are_rejected_with_their_key() {
        let problems = parse(
            r#"
            [[actions]]
            name = "Bad Name"
            kind = "ssh"
            allowed = ["user:U0A"]

            [[actions]]
            name = "loose"
            kind = "command"
            argv = ["/usr/bin/ping", "-c1", "{host}"]
            allowed = []
            params = [{ name = "host", pattern = ".*" }, { name = "x" }, { name = "y", allowed = ["ok", "a;b"] }]

            [[actions]]
            name = "shell"
            kind = "command"
            argv = ["sh", "-c", "echo {v}"]
            allowed = ["user:U0A"]
            params = [{ name = "v", pattern = "[a-z]+" }]
        "#,
        )
        .expect_err("invalid");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        for expected in [
            "actions.Bad Name.name",
            "actions.Bad Name.kind",
            "actions.loose.params[0].pattern",
            "actions.loose.params[1]",
            "actions.loose.params[2].allowed",
            "actions.loose.allowed",
            "actions.shell.argv",
        ] {
            assert!(
                keys.contains(&expected),
                "missing {expected}: {problems:#?}"
            );
        }
    }
}
