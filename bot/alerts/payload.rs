//! Webhook bodies from Alertmanager and Grafana, parsed into an [`AlertBatch`].
//!
//! The body is read as JSON once and then walked field by field, so that a
//! rejection can say exactly where the problem is (`alerts[2].startsAt: …`) in
//! one line the sender's operator can act on. Fields Klaxon does not use are
//! ignored, because both senders add fields from release to release; fields it
//! does use are checked strictly, because a wrong type there is a bug in the
//! sender (or not a sender at all).
//!
//! Nothing that parses is refused for its size: any number of alerts (none
//! included), values of any length. A sender cannot fix a 4xx by retrying —
//! Alertmanager drops the notification for good — so what Klaxon keeps is
//! everything it received, and only what it *shows* is cut (see the use case).
//! The HTTP layer bounds the body as a whole (`alerts.max_body_bytes`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Alert, AlertBatch, AlertStatus, is_label_name, labels_fingerprint};
use crate::incident::IncidentSource;
use crate::time::Millis;

/// Longest piece of a rejected value quoted back in an error, in characters.
const QUOTE_CHARS: usize = 64;

/// Why a webhook body was rejected. `Display` is one line naming the field and
/// the problem, suitable for the body of a 400 response and for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object: the body is {0}")]
    NotAnObject(&'static str),
    #[error("unsupported version {found:?}: Klaxon accepts {sender} webhook version {expected:?}")]
    UnsupportedVersion {
        found: String,
        sender: &'static str,
        expected: &'static str,
    },
    #[error("missing field {0}")]
    MissingField(String),
    #[error("{0} is empty")]
    EmptyField(String),
    #[error("{field}: expected {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{field}: {value:?} is neither \"firing\" nor \"resolved\"")]
    NotAStatus { field: String, value: String },
    #[error("{field}: {value:?} is not an RFC 3339 time like \"2026-11-22T17:04:09Z\"")]
    NotATime { field: String, value: String },
    #[error(
        "{field}: {value:?} is the sender's \"no time\" (year 1), but an alert needs a start time"
    )]
    NoStartTime { field: String, value: String },
    #[error("{field}: {value} is not a whole number of at least 0")]
    NotACount { field: String, value: String },
}

/// Parses an Alertmanager webhook notification (payload version `"4"`).
///
/// `groupKey`, `status` and `alerts` are required, and every alert needs a
/// `status`, a `startsAt` and a `fingerprint`.
pub fn parse_alertmanager(body: &[u8]) -> Result<AlertBatch, PayloadError> {
    let obj = root_object(body)?;
    let root = Fields::top(&obj);
    match root.opt_str("version")? {
        Some("4") => {}
        None => return Err(PayloadError::MissingField(root.key("version"))),
        Some(other) => return Err(unsupported(other, "Alertmanager", "4")),
    }
    let group_key = root.nonempty_str("groupKey")?.to_string();
    parse_batch(&root, IncidentSource::Alertmanager, group_key)
}

/// Parses a Grafana unified alerting webhook notification (payload version
/// `"1"`, or no version at all as older Grafana releases send).
///
/// The group key is Grafana's `groupKey` when it sends a non-empty one, else
/// `grafana:` followed by the organisation (`<orgId>:`, when given) and the
/// group labels as `name=value` pairs in name order, joined by commas. An alert
/// without a `fingerprint` gets [`labels_fingerprint`] of its labels.
pub fn parse_grafana(body: &[u8]) -> Result<AlertBatch, PayloadError> {
    let obj = root_object(body)?;
    let root = Fields::top(&obj);
    match root.opt_str("version")? {
        Some("1") | None => {}
        Some(other) => return Err(unsupported(other, "Grafana", "1")),
    }
    let org_id = root.opt_count("orgId")?;
    let group_key = match root.opt_str("groupKey")? {
        Some(k) if !k.is_empty() => k.to_string(),
        _ => {
            let labels = root.string_map("groupLabels")?;
            let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            match org_id {
                Some(org) => format!("grafana:{org}:{}", pairs.join(",")),
                None => format!("grafana:{}", pairs.join(",")),
            }
        }
    };
    parse_batch(&root, IncidentSource::Grafana, group_key)
}

/// An alert sender Klaxon accepts: where it posts and how its body reads.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    /// The last segment of its webhook path: `/alerts/<path>`.
    pub path: &'static str,
    pub source: IncidentSource,
    pub parse: fn(&[u8]) -> Result<AlertBatch, PayloadError>,
}

/// Every alert sender. A new one is a variant of [`IncidentSource`], a parser in
/// this file and a line here; the HTTP layer serves each at `/alerts/<path>`.
pub const SENDERS: &[Sender] = &[
    Sender {
        path: "alertmanager",
        source: IncidentSource::Alertmanager,
        parse: parse_alertmanager,
    },
    Sender {
        path: "grafana",
        source: IncidentSource::Grafana,
        parse: parse_grafana,
    },
];

/// The sender posting to `/alerts/<path>`, if there is one.
pub fn sender(path: &str) -> Option<&'static Sender> {
    SENDERS.iter().find(|s| s.path == path)
}

fn unsupported(found: &str, sender: &'static str, expected: &'static str) -> PayloadError {
    PayloadError::UnsupportedVersion {
        found: quote(found),
        sender,
        expected,
    }
}

/// The body as a JSON object.
fn root_object(body: &[u8]) -> Result<Map<String, Value>, PayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(PayloadError::NotAnObject(kind(&other))),
    }
}

/// The fields both senders share, after the version and group key are known.
fn parse_batch(
    root: &Fields<'_>,
    source: IncidentSource,
    group_key: String,
) -> Result<AlertBatch, PayloadError> {
    let status = root.status("status")?;
    let receiver = root.opt_str("receiver")?.unwrap_or_default().to_string();
    let group_labels = root.string_map("groupLabels")?;
    let common_labels = root.string_map("commonLabels")?;
    let common_annotations = root.string_map("commonAnnotations")?;
    let external_url = root.opt_nonempty("externalURL")?;
    let truncated_alerts = root.opt_count("truncatedAlerts")?.unwrap_or(0);
    let (title, message) = match source {
        IncidentSource::Grafana => (root.opt_nonempty("title")?, root.opt_nonempty("message")?),
        IncidentSource::Alertmanager | IncidentSource::Slack | IncidentSource::Heartbeat => {
            (None, None)
        }
    };

    let items = match root.get("alerts") {
        None => return Err(PayloadError::MissingField(root.key("alerts"))),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(root.wrong_type("alerts", "an array", other)),
    };
    let alerts = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_alert(i, item, source))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(AlertBatch {
        source,
        group_key,
        status,
        receiver,
        group_labels,
        common_labels,
        common_annotations,
        external_url,
        truncated_alerts,
        title,
        message,
        alerts,
    })
}

fn parse_alert(index: usize, item: &Value, source: IncidentSource) -> Result<Alert, PayloadError> {
    let path = format!("alerts[{index}]");
    let Value::Object(obj) = item else {
        return Err(PayloadError::WrongType {
            field: path,
            expected: "an object",
            found: kind(item),
        });
    };
    let a = Fields { obj, path };
    let status = a.status("status")?;
    let labels = a.string_map("labels")?;
    let annotations = a.string_map("annotations")?;
    let starts_at = match a.time("startsAt")? {
        Some(Time::At(t)) => t,
        Some(Time::None(value)) => {
            return Err(PayloadError::NoStartTime {
                field: a.key("startsAt"),
                value,
            });
        }
        None => return Err(PayloadError::MissingField(a.key("startsAt"))),
    };
    let ends_at = match a.time("endsAt")? {
        Some(Time::At(t)) => Some(t),
        Some(Time::None(_)) | None => None,
    };
    let generator_url = a.opt_nonempty("generatorURL")?;

    let alert = match source {
        IncidentSource::Alertmanager | IncidentSource::Slack | IncidentSource::Heartbeat => Alert {
            fingerprint: a.nonempty_str("fingerprint")?.to_string(),
            status,
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url,
            silence_url: None,
            dashboard_url: None,
            panel_url: None,
            values: BTreeMap::new(),
        },
        IncidentSource::Grafana => Alert {
            fingerprint: match a.opt_nonempty("fingerprint")? {
                Some(f) => f,
                None => labels_fingerprint(&labels),
            },
            status,
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url,
            silence_url: a.opt_nonempty("silenceURL")?,
            dashboard_url: a.opt_nonempty("dashboardURL")?,
            panel_url: a.opt_nonempty("panelURL")?,
            values: a.number_map("values")?,
        },
    };
    Ok(alert)
}

/// A time field as sent: a real instant, or the year-1 time senders use for "none".
enum Time {
    At(Millis),
    /// The value as sent, for messages.
    None(String),
}

/// Parses an RFC 3339 time with 0–9 fractional digits and a `Z` or `±hh:mm` offset.
fn parse_time(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    // jiff also reads ISO 8601 shapes RFC 3339 does not allow (a space for
    // `T`, no offset, ten fractional digits): senders write `T`, an offset
    // and at most 9 digits, so anything else is not a time from a sender.
    if b.len() < 20 || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let mut offset = 19;
    if b[19] == b'.' {
        let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        offset = 20 + digits;
    }
    // RFC 3339's offset: `Z` or `±hh:mm` (not ISO 8601's `±hhmm`).
    let zone = &b[offset..];
    let numeric = |z: &[u8]| {
        z.len() == 6
            && matches!(z[0], b'+' | b'-')
            && z[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| z[i].is_ascii_digit())
    };
    if !(zone.eq_ignore_ascii_case(b"Z") || numeric(zone)) {
        return None;
    }
    let t: jiff::Timestamp = s.parse().ok()?;
    // Year 1 (`0001-01-01T00:00:00Z`) is the senders' "no time".
    if t.as_second() < YEAR_2_UTC_SECONDS {
        return Some(Time::None(s.to_string()));
    }
    Some(Time::At(Millis::from_timestamp(t)))
}

/// `0002-01-01T00:00:00Z` in Unix seconds: anything earlier is a sender's "no time".
const YEAR_2_UTC_SECONDS: i64 = -62_104_060_800;

/// A JSON object being read, and where it sits in the body (for messages).
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    /// `""` for the top level, `alerts[2]` for an alert.
    path: String,
}

impl<'a> Fields<'a> {
    fn top(obj: &'a Map<String, Value>) -> Self {
        Fields {
            obj,
            path: String::new(),
        }
    }

    /// The name of a field as messages show it: `groupKey`, `alerts[2].startsAt`.
    fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The field's value; a JSON `null` counts as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, name: &str, expected: &'static str, found: &Value) -> PayloadError {
        PayloadError::WrongType {
            field: self.key(name),
            expected,
            found: kind(found),
        }
    }

    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, PayloadError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(name, "a string", other)),
        }
    }

    /// A string that must be present and not empty.
    fn nonempty_str(&self, name: &str) -> Result<&'a str, PayloadError> {
        match self.opt_str(name)? {
            None => Err(PayloadError::MissingField(self.key(name))),
            Some("") => Err(PayloadError::EmptyField(self.key(name))),
            Some(s) => Ok(s),
        }
    }

    /// An optional string, where an empty one (as Grafana sends for a missing
    /// panel, say) counts as absent.
    fn opt_nonempty(&self, name: &str) -> Result<Option<String>, PayloadError> {
        Ok(self
            .opt_str(name)?
            .filter(|s| !s.is_empty())
            .map(str::to_string))
    }

    fn status(&self, name: &str) -> Result<AlertStatus, PayloadError> {
        let s = self.nonempty_str(name)?;
        AlertStatus::parse(s).ok_or_else(|| PayloadError::NotAStatus {
            field: self.key(name),
            value: quote(s),
        })
    }

    fn time(&self, name: &str) -> Result<Option<Time>, PayloadError> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) => parse_time(s)
                .map(Some)
                .ok_or_else(|| PayloadError::NotATime {
                    field: self.key(name),
                    value: quote(s),
                }),
        }
    }

    fn opt_count(&self, name: &str) -> Result<Option<u64>, PayloadError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| PayloadError::NotACount {
                field: self.key(name),
                value: n.to_string(),
            }),
            Some(other) => Err(self.wrong_type(name, "a number", other)),
        }
    }

    /// Labels or annotations: an object of strings, of any length. Absent or
    /// `null` is an empty map.
    fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, PayloadError> {
        let obj = match self.get(name) {
            None => return Ok(BTreeMap::new()),
            Some(Value::Object(obj)) => obj,
            Some(other) => return Err(self.wrong_type(name, "an object", other)),
        };
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let field = || entry_key(&self.key(name), k);
            let Value::String(s) = v else {
                return Err(PayloadError::WrongType {
                    field: field(),
                    expected: "a string",
                    found: kind(v),
                });
            };
            out.insert(k.clone(), s.clone());
        }
        Ok(out)
    }

    /// Grafana's `values`: an object of numbers. Absent or `null` is an empty map.
    fn number_map(&self, name: &str) -> Result<BTreeMap<String, f64>, PayloadError> {
        let obj = match self.get(name) {
            None => return Ok(BTreeMap::new()),
            Some(Value::Object(obj)) => obj,
            Some(other) => return Err(self.wrong_type(name, "an object", other)),
        };
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let Some(n) = v.as_f64() else {
                return Err(PayloadError::WrongType {
                    field: entry_key(&self.key(name), k),
                    expected: "a number",
                    found: kind(v),
                });
            };
            out.insert(k.clone(), n);
        }
        Ok(out)
    }
}

/// `alerts[0].labels.team`, or `alerts[0].labels["odd name"]` for names that
/// are not plain identifiers.
fn entry_key(map_key: &str, name: &str) -> String {
    if is_label_name(name) {
        format!("{map_key}.{name}")
    } else {
        format!("{map_key}[{:?}]", quote(name))
    }
}

/// At most [`QUOTE_CHARS`] characters of a value, to quote back in a message.
fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_CHARS {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(QUOTE_CHARS).collect();
        cut.push('…');
        cut
    }
}

/// What kind of JSON value this is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-11-22T17:04:09Z.
    const T0: i64 = 1_795_367_049_000;

    /// Alertmanager 0.28, two alerts firing, as it posts them.
    const AM_FIRING: &str = r#"{
      "receiver": "klaxon",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "HighErrorRate", "env": "prod", "instance": "api-1:9090", "job": "api", "service": "checkout", "severity": "critical", "team": "payments"},
          "annotations": {"description": "5.2% of checkout requests fail on api-1:9090.", "runbook_url": "https://runbooks.example.com/high-error-rate", "summary": "Checkout error rate above 5%"},
          "startsAt": "2026-11-22T17:04:09.123456789Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=job%3Aerrors%3Arate5m+%3E+0.05&g0.tab=1",
          "fingerprint": "5ef77f1f8a3ecfa9"
        },
        {
          "status": "firing",
          "labels": {"alertname": "HighErrorRate", "env": "prod", "instance": "api-2:9090", "job": "api", "service": "checkout", "severity": "critical", "team": "payments"},
          "annotations": {"description": "6.8% of checkout requests fail on api-2:9090.", "runbook_url": "https://runbooks.example.com/high-error-rate", "summary": "Checkout error rate above 5%"},
          "startsAt": "2026-11-22T17:04:39.5Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=job%3Aerrors%3Arate5m+%3E+0.05&g0.tab=1",
          "fingerprint": "b2e1c3d4a5f60718"
        }
      ],
      "groupLabels": {"alertname": "HighErrorRate", "team": "payments"},
      "commonLabels": {"alertname": "HighErrorRate", "env": "prod", "job": "api", "service": "checkout", "severity": "critical", "team": "payments"},
      "commonAnnotations": {"runbook_url": "https://runbooks.example.com/high-error-rate", "summary": "Checkout error rate above 5%"},
      "externalURL": "http://alertmanager.example.com:9093",
      "version": "4",
      "groupKey": "{}/{team=\"payments\"}:{alertname=\"HighErrorRate\", team=\"payments\"}",
      "truncatedAlerts": 0
    }"#;

    /// The same group once over, from an Alertmanager in a +01:00 zone.
    const AM_RESOLVED: &str = r#"{
      "receiver": "klaxon",
      "status": "resolved",
      "alerts": [
        {
          "status": "resolved",
          "labels": {"alertname": "HighErrorRate", "instance": "api-1:9090", "job": "api", "team": "payments"},
          "annotations": {"summary": "Checkout error rate above 5%"},
          "startsAt": "2026-11-22T17:04:09.123456789Z",
          "endsAt": "2026-11-22T18:34:09+01:00",
          "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=job%3Aerrors%3Arate5m+%3E+0.05&g0.tab=1",
          "fingerprint": "5ef77f1f8a3ecfa9"
        }
      ],
      "groupLabels": {"alertname": "HighErrorRate", "team": "payments"},
      "commonLabels": {"alertname": "HighErrorRate", "instance": "api-1:9090", "job": "api", "team": "payments"},
      "commonAnnotations": {"summary": "Checkout error rate above 5%"},
      "externalURL": "http://alertmanager.example.com:9093",
      "version": "4",
      "groupKey": "{}/{team=\"payments\"}:{alertname=\"HighErrorRate\", team=\"payments\"}",
      "truncatedAlerts": 0
    }"#;

    /// One alert still firing, one resolved, three more left out by `max_alerts`.
    const AM_MIXED_TRUNCATED: &str = r#"{
      "receiver": "klaxon",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "DiskFull", "instance": "db-1", "job": "node"},
          "annotations": {},
          "startsAt": "2026-11-22T17:00:00.000Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "",
          "fingerprint": "1111111111111111"
        },
        {
          "status": "resolved",
          "labels": {"alertname": "DiskFull", "instance": "db-2", "job": "node"},
          "annotations": {},
          "startsAt": "2026-11-22T16:00:00Z",
          "endsAt": "2026-11-22T17:04:09Z",
          "generatorURL": "",
          "fingerprint": "2222222222222222"
        }
      ],
      "groupLabels": {"alertname": "DiskFull"},
      "commonLabels": {"alertname": "DiskFull", "job": "node"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager.example.com:9093",
      "version": "4",
      "groupKey": "{}:{alertname=\"DiskFull\"}",
      "truncatedAlerts": 3
    }"#;

    /// Grafana 11 unified alerting, webhook contact point, as it posts.
    const GRAFANA_FIRING: &str = r#"{
      "receiver": "klaxon-webhook",
      "status": "firing",
      "orgId": 1,
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "HighErrorRate", "env": "prod", "grafana_folder": "API", "service": "api", "severity": "critical"},
          "annotations": {"runbook_url": "https://runbooks.example.com/api"},
          "startsAt": "2026-11-22T18:04:09.157076+01:00",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "https://grafana.example.com/alerting/grafana/edb1x3k2/view?orgId=1",
          "fingerprint": "c6eadffa33fcdf37",
          "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHighErrorRate&matcher=env%3Dprod&matcher=service%3Dapi&orgId=1",
          "dashboardURL": "https://grafana.example.com/d/api-overview?orgId=1",
          "panelURL": "https://grafana.example.com/d/api-overview?orgId=1&viewPanel=4",
          "values": {"B": 0.07, "C": 1},
          "valueString": "[ var='B' labels={service=api} value=0.07 ], [ var='C' labels={service=api} value=1 ]"
        }
      ],
      "groupLabels": {"alertname": "HighErrorRate", "grafana_folder": "API"},
      "commonLabels": {"alertname": "HighErrorRate", "env": "prod", "grafana_folder": "API", "service": "api", "severity": "critical"},
      "commonAnnotations": {"runbook_url": "https://runbooks.example.com/api"},
      "externalURL": "https://grafana.example.com/",
      "version": "1",
      "groupKey": "{}/{__grafana_autogenerated__=\"true\"}/{__grafana_receiver__=\"klaxon-webhook\"}:{alertname=\"HighErrorRate\", grafana_folder=\"API\"}",
      "truncatedAlerts": 0,
      "title": "[FIRING:1] HighErrorRate api (prod)",
      "state": "alerting",
      "message": "**Firing**\n\nValue: B=0.07, C=1\nLabels:\n - alertname = HighErrorRate\n - env = prod\n - service = api\n"
    }"#;

    /// An older Grafana: no version, no group key, no fingerprint, `values: null`.
    const GRAFANA_OLD_RESOLVED: &str = r#"{
      "receiver": "klaxon-webhook",
      "status": "resolved",
      "orgId": 2,
      "alerts": [
        {
          "status": "resolved",
          "labels": {"alertname": "QueueBacklog", "queue": "emails"},
          "annotations": {"summary": "emails queue backlog"},
          "startsAt": "2026-11-22T17:04:09Z",
          "endsAt": "2026-11-22T17:34:09Z",
          "generatorURL": "https://grafana.example.com/alerting/grafana/q1/view",
          "silenceURL": "https://grafana.example.com/alerting/silence/new?matcher=alertname%3DQueueBacklog",
          "dashboardURL": "",
          "panelURL": "",
          "values": null
        }
      ],
      "groupLabels": {"queue": "emails", "alertname": "QueueBacklog"},
      "commonLabels": {"alertname": "QueueBacklog", "queue": "emails"},
      "commonAnnotations": {"summary": "emails queue backlog"},
      "externalURL": "https://grafana.example.com/",
      "title": "[RESOLVED] QueueBacklog (emails)",
      "state": "ok",
      "message": "**Resolved**"
    }"#;

    fn am(body: &str) -> AlertBatch {
        parse_alertmanager(body.as_bytes()).expect("a valid Alertmanager payload")
    }

    fn grafana(body: &str) -> AlertBatch {
        parse_grafana(body.as_bytes()).expect("a valid Grafana payload")
    }

    /// A real payload with one change, as bytes.
    fn changed(body: &str, change: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(body).expect("test payload is JSON");
        change(&mut v);
        serde_json::to_vec(&v).expect("serializable")
    }

    /// The one-line message for a rejected Alertmanager body.
    fn am_rejects(body: &[u8]) -> String {
        let msg = parse_alertmanager(body)
            .expect_err("the payload should be rejected")
            .to_string();
        assert!(!msg.contains('\n'), "not one line: {msg}");
        msg
    }

    fn grafana_rejects(body: &[u8]) -> String {
        let msg = parse_grafana(body)
            .expect_err("the payload should be rejected")
            .to_string();
        assert!(!msg.contains('\n'), "not one line: {msg}");
        msg
    }

    #[test]
    fn an_alertmanager_firing_notification_parses_with_nanosecond_start_times() {
        let b = am(AM_FIRING);
        assert_eq!(b.source, IncidentSource::Alertmanager);
        assert_eq!(
            b.group_key,
            "{}/{team=\"payments\"}:{alertname=\"HighErrorRate\", team=\"payments\"}"
        );
        assert_eq!(b.status, AlertStatus::Firing);
        assert_eq!(b.receiver, "klaxon");
        assert_eq!(b.group_labels.len(), 2);
        assert_eq!(b.common_labels["severity"], "critical");
        assert_eq!(
            b.external_url.as_deref(),
            Some("http://alertmanager.example.com:9093")
        );
        assert_eq!(b.truncated_alerts, 0);
        assert_eq!(b.title, None);
        assert_eq!(b.title(), "Checkout error rate above 5%");
        assert_eq!(b.alerts.len(), 2);

        let a = &b.alerts[0];
        assert_eq!(a.fingerprint, "5ef77f1f8a3ecfa9");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.labels["instance"], "api-1:9090");
        assert_eq!(
            a.annotations["description"],
            "5.2% of checkout requests fail on api-1:9090."
        );
        // 9 fractional digits: .123456789 s is 123 ms (rounded down).
        assert_eq!(a.starts_at, Millis(T0 + 123));
        assert_eq!(a.ends_at, None, "0001-01-01T00:00:00Z means no end");
        assert!(
            a.generator_url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://prometheus"))
        );
        assert_eq!(a.silence_url, None);
        assert!(a.values.is_empty());
        assert_eq!(b.alerts[1].starts_at, Millis(T0 + 30_500));
        assert_eq!(b.firing().count(), 2);
        assert_eq!(b.resolved().count(), 0);
    }

    #[test]
    fn an_alertmanager_resolved_notification_has_an_end_time_from_an_offset_without_fractions() {
        let b = am(AM_RESOLVED);
        assert_eq!(b.status, AlertStatus::Resolved);
        let a = &b.alerts[0];
        assert_eq!(a.status, AlertStatus::Resolved);
        // 18:34:09+01:00 is 17:34:09Z, half an hour after T0.
        assert_eq!(a.ends_at, Some(Millis(T0 + 30 * 60 * 1000)));
        assert_eq!(b.resolved().count(), 1);
        assert_eq!(b.firing().count(), 0);
    }

    #[test]
    fn a_mixed_notification_keeps_each_alerts_status_and_the_truncated_count() {
        let b = am(AM_MIXED_TRUNCATED);
        assert_eq!(b.status, AlertStatus::Firing);
        assert_eq!(b.truncated_alerts, 3);
        let firing: Vec<&str> = b.firing().map(|a| a.fingerprint.as_str()).collect();
        let resolved: Vec<&str> = b.resolved().map(|a| a.fingerprint.as_str()).collect();
        assert_eq!(firing, ["1111111111111111"]);
        assert_eq!(resolved, ["2222222222222222"]);
        assert_eq!(b.alerts[0].starts_at, Millis(T0 - 249_000));
        assert_eq!(b.alerts[1].ends_at, Some(Millis(T0)));
        assert_eq!(b.alerts[0].generator_url, None, "empty URL counts as none");
        assert_eq!(b.title(), "DiskFull on node");
    }

    #[test]
    fn a_grafana_notification_keeps_its_title_links_and_values() {
        let b = grafana(GRAFANA_FIRING);
        assert_eq!(b.source, IncidentSource::Grafana);
        assert!(
            b.group_key
                .starts_with("{}/{__grafana_autogenerated__=\"true\"}")
        );
        assert_eq!(b.status, AlertStatus::Firing);
        assert_eq!(b.receiver, "klaxon-webhook");
        assert_eq!(
            b.title.as_deref(),
            Some("[FIRING:1] HighErrorRate api (prod)")
        );
        assert!(
            b.message
                .as_deref()
                .is_some_and(|m| m.starts_with("**Firing**"))
        );
        assert_eq!(b.title(), "HighErrorRate api (prod)", "without the state");

        let a = &b.alerts[0];
        assert_eq!(a.fingerprint, "c6eadffa33fcdf37");
        // 18:04:09.157076+01:00 is 17:04:09.157Z.
        assert_eq!(a.starts_at, Millis(T0 + 157));
        assert_eq!(a.ends_at, None);
        assert!(
            a.silence_url
                .as_deref()
                .is_some_and(|u| u.contains("/alerting/silence/new"))
        );
        assert_eq!(
            a.dashboard_url.as_deref(),
            Some("https://grafana.example.com/d/api-overview?orgId=1")
        );
        assert!(
            a.panel_url
                .as_deref()
                .is_some_and(|u| u.ends_with("viewPanel=4"))
        );
        assert_eq!(a.values.get("B"), Some(&0.07));
        assert_eq!(a.values.get("C"), Some(&1.0));
        assert_eq!(a.values.len(), 2);
    }

    #[test]
    fn an_older_grafana_notification_gets_a_group_key_and_fingerprints_from_its_labels() {
        let b = grafana(GRAFANA_OLD_RESOLVED);
        assert_eq!(b.group_key, "grafana:2:alertname=QueueBacklog,queue=emails");
        assert_eq!(b.status, AlertStatus::Resolved);
        let a = &b.alerts[0];
        assert_eq!(a.fingerprint, labels_fingerprint(&a.labels));
        assert!(a.values.is_empty(), "values: null is no values");
        assert_eq!(a.dashboard_url, None);
        assert_eq!(a.panel_url, None);
        assert_eq!(a.ends_at, Some(Millis(T0 + 30 * 60 * 1000)));
        assert_eq!(b.title(), "emails queue backlog");

        let no_org = changed(GRAFANA_OLD_RESOLVED, |v| {
            v["orgId"] = Value::Null;
            v["groupKey"] = json!("");
        });
        let b = parse_grafana(&no_org).expect("valid");
        assert_eq!(b.group_key, "grafana:alertname=QueueBacklog,queue=emails");
    }

    #[test]
    fn the_same_notification_delivered_twice_has_the_same_dedupe_key() {
        let reordered = changed(AM_FIRING, |v| {
            if let Some(alerts) = v["alerts"].as_array_mut() {
                alerts.reverse();
            }
        });
        let b = parse_alertmanager(&reordered).expect("valid");
        assert_eq!(b.alerts[0].fingerprint, "b2e1c3d4a5f60718");
        assert_eq!(b.dedupe_key(), am(AM_FIRING).dedupe_key());
    }

    #[test]
    fn the_dedupe_key_differs_once_an_alert_resolves() {
        let one_resolved = changed(AM_FIRING, |v| {
            v["alerts"][1]["status"] = json!("resolved");
            v["alerts"][1]["endsAt"] = json!("2026-11-22T17:30:00Z");
        });
        let b = parse_alertmanager(&one_resolved).expect("valid");
        assert_ne!(b.dedupe_key(), am(AM_FIRING).dedupe_key());
    }

    #[test]
    fn fields_klaxon_does_not_know_are_ignored() {
        let extra = changed(AM_FIRING, |v| {
            v["someFutureField"] = json!({"nested": [1, 2, 3]});
            v["alerts"][0]["silenceURL"] = json!("ignored for Alertmanager");
        });
        let b = parse_alertmanager(&extra).expect("valid");
        assert_eq!(b.alerts[0].silence_url, None);
    }

    #[test]
    fn a_body_that_is_not_json_is_rejected_as_such() {
        assert_eq!(
            am_rejects(b"<html>502 Bad Gateway</html>"),
            "not JSON: expected value at line 1 column 1"
        );
        assert_eq!(am_rejects(b"[]"), "not a JSON object: the body is an array");
    }

    #[test]
    fn other_payload_versions_are_refused_with_the_one_klaxon_accepts() {
        let v3 = changed(AM_FIRING, |v| v["version"] = json!("3"));
        assert_eq!(
            am_rejects(&v3),
            "unsupported version \"3\": Klaxon accepts Alertmanager webhook version \"4\""
        );
        let none = changed(AM_FIRING, |v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("version");
            }
        });
        assert_eq!(am_rejects(&none), "missing field version");
        let g2 = changed(GRAFANA_FIRING, |v| v["version"] = json!("2"));
        assert_eq!(
            grafana_rejects(&g2),
            "unsupported version \"2\": Klaxon accepts Grafana webhook version \"1\""
        );
    }

    #[test]
    fn an_alertmanager_notification_without_a_group_key_is_rejected() {
        let missing = changed(AM_FIRING, |v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("groupKey");
            }
        });
        assert_eq!(am_rejects(&missing), "missing field groupKey");
        let empty = changed(AM_FIRING, |v| v["groupKey"] = json!(""));
        assert_eq!(am_rejects(&empty), "groupKey is empty");
        let no_status = changed(AM_FIRING, |v| v["status"] = Value::Null);
        assert_eq!(am_rejects(&no_status), "missing field status");
        let odd_status = changed(AM_FIRING, |v| v["alerts"][1]["status"] = json!("pending"));
        assert_eq!(
            am_rejects(&odd_status),
            "alerts[1].status: \"pending\" is neither \"firing\" nor \"resolved\""
        );
        let no_fingerprint = changed(AM_FIRING, |v| v["alerts"][0]["fingerprint"] = json!(""));
        assert_eq!(
            am_rejects(&no_fingerprint),
            "alerts[0].fingerprint is empty"
        );
    }

    #[test]
    fn a_start_time_that_is_not_rfc_3339_is_rejected_naming_the_alert() {
        let garbage = changed(AM_FIRING, |v| {
            v["alerts"][1]["startsAt"] = json!("yesterday")
        });
        assert_eq!(
            am_rejects(&garbage),
            "alerts[1].startsAt: \"yesterday\" is not an RFC 3339 time like \"2026-11-22T17:04:09Z\""
        );
        let no_start = changed(AM_FIRING, |v| {
            v["alerts"][0]["startsAt"] = json!("0001-01-01T00:00:00Z");
        });
        assert!(
            am_rejects(&no_start).starts_with("alerts[0].startsAt: \"0001-01-01T00:00:00Z\""),
            "{}",
            am_rejects(&no_start)
        );
        let missing = changed(AM_FIRING, |v| v["alerts"][0]["startsAt"] = Value::Null);
        assert_eq!(am_rejects(&missing), "missing field alerts[0].startsAt");
    }

    #[test]
    fn times_accept_zero_to_nine_fractional_digits_and_only_rfc_3339_shapes() {
        let at = |s: &str| match parse_time(s) {
            Some(Time::At(m)) => Some(m),
            _ => None,
        };
        assert_eq!(at("2026-11-22T17:04:09Z"), Some(Millis(T0)));
        assert_eq!(at("2026-11-22T17:04:09.1Z"), Some(Millis(T0 + 100)));
        assert_eq!(at("2026-11-22T17:04:09.999999999Z"), Some(Millis(T0 + 999)));
        assert_eq!(at("2026-11-22T12:04:09-05:00"), Some(Millis(T0)));
        assert_eq!(at("2026-11-22t17:04:09z"), Some(Millis(T0)));
        for bad in [
            "2026-11-22T17:04:09.1234567891Z",
            "2026-11-22T17:04:09.Z",
            "2026-11-22X17:04:09Z",
            "2026-11-22 17:04:09Z",
            "2026-11-22T17:04:09",
            "2026-11-22T17:04:09+0100",
            "2026-13-22T17:04:09Z",
            "1795367049",
            "",
        ] {
            assert!(parse_time(bad).is_none(), "{bad} should be rejected");
        }
        for none in [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.000Z",
            "0001-07-01T12:00:00+02:00",
        ] {
            assert!(
                matches!(parse_time(none), Some(Time::None(_))),
                "{none} means no time"
            );
        }
        // A year-1 end time is "no end", whatever its exact spelling.
        let odd_end = changed(AM_FIRING, |v| {
            v["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00.000000000Z");
        });
        let b = parse_alertmanager(&odd_end).expect("valid");
        assert_eq!(b.alerts[0].ends_at, None);
    }

    #[test]
    fn a_notification_without_alerts_parses_but_one_without_the_field_does_not() {
        let empty = changed(AM_FIRING, |v| v["alerts"] = json!([]));
        assert!(
            parse_alertmanager(&empty)
                .expect("parses")
                .alerts
                .is_empty()
        );
        let missing = changed(GRAFANA_FIRING, |v| v["alerts"] = Value::Null);
        assert_eq!(grafana_rejects(&missing), "missing field alerts");
    }

    #[test]
    fn any_number_of_alerts_is_accepted() {
        let with_n = |n: usize| {
            changed(AM_FIRING, |v| {
                let one = v["alerts"][0].clone();
                v["alerts"] = Value::Array(vec![one; n]);
            })
        };
        for n in [1_001, 10_000] {
            let b = parse_alertmanager(&with_n(n)).expect("no limit on the count");
            assert_eq!(b.alerts.len(), n);
        }
    }

    #[test]
    fn label_values_that_are_not_strings_are_rejected_naming_the_label() {
        let number = changed(AM_FIRING, |v| {
            v["alerts"][1]["labels"]["severity"] = json!(5)
        });
        assert_eq!(
            am_rejects(&number),
            "alerts[1].labels.severity: expected a string, found a number"
        );
        let odd_name = changed(AM_FIRING, |v| v["commonLabels"]["odd name"] = json!(true));
        assert_eq!(
            am_rejects(&odd_name),
            "commonLabels[\"odd name\"]: expected a string, found a boolean"
        );
        let list = changed(AM_FIRING, |v| v["alerts"][0]["annotations"] = json!(["x"]));
        assert_eq!(
            am_rejects(&list),
            "alerts[0].annotations: expected an object, found an array"
        );
        let values = changed(GRAFANA_FIRING, |v| {
            v["alerts"][0]["values"]["B"] = json!("high")
        });
        assert_eq!(
            grafana_rejects(&values),
            "alerts[0].values.B: expected a number, found a string"
        );
    }

    #[test]
    fn label_and_annotation_values_of_any_length_are_kept_whole() {
        let long = "x".repeat(1024 * 1024);
        let sized = changed(AM_FIRING, |v| {
            v["alerts"][0]["annotations"]["description"] = json!(long.clone());
            v["alerts"][0]["labels"]["pod"] = json!("p".repeat(20_000));
        });
        let b = parse_alertmanager(&sized).expect("no limit on a value's length");
        assert_eq!(b.alerts[0].annotations["description"], long);
        assert_eq!(b.alerts[0].labels["pod"].len(), 20_000);
    }

    #[test]
    fn long_rejected_values_are_quoted_short() {
        let long = changed(AM_FIRING, |v| {
            v["alerts"][0]["startsAt"] = json!(format!("{}\n", "y".repeat(10_000)));
        });
        let msg = am_rejects(&long);
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains('…'), "{msg}");
    }

    #[test]
    fn wrongly_typed_top_level_fields_are_named() {
        let version = changed(AM_FIRING, |v| v["version"] = json!(4));
        assert_eq!(
            am_rejects(&version),
            "version: expected a string, found a number"
        );
        let truncated = changed(AM_FIRING, |v| v["truncatedAlerts"] = json!(-1));
        assert_eq!(
            am_rejects(&truncated),
            "truncatedAlerts: -1 is not a whole number of at least 0"
        );
        let alert = changed(AM_FIRING, |v| v["alerts"][1] = json!("firing"));
        assert_eq!(
            am_rejects(&alert),
            "alerts[1]: expected an object, found a string"
        );
    }
}
