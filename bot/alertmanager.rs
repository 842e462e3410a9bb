//! Alertmanager's API v2: silences made from Slack, and which alerts are still
//! active (when `max_alerts` hid some of a group). The adapter behind the use
//! cases' [`Alertmanager`] port. Errors are one line for the thread and never
//! carry the URL (it may hold credentials).

use std::time::Duration;

use serde_json::{Value, json};

use std::collections::BTreeMap;

use crate::time::Millis;
use crate::usecases::ports::{Alertmanager, BoxFuture, ListedAlert, NewSilence};

/// One call may take this long before it counts as failed (the job retries).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Alertmanager at a base URL such as `http://alertmanager:9093`.
#[derive(Debug, Clone)]
pub struct AlertmanagerApi {
    client: reqwest::Client,
    base_url: String,
}

impl AlertmanagerApi {
    pub fn new(base_url: &str) -> anyhow::Result<AlertmanagerApi> {
        Ok(AlertmanagerApi {
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .user_agent(concat!("klaxon/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// `POST /api/v2/silences`; returns the silence id. Regex matchers are
    /// sent as written: Alertmanager anchors them, as Klaxon's routes do.
    async fn create_silence(&self, s: &NewSilence) -> Result<String, String> {
        use crate::alerts::routing::MatchOp;
        let mut matchers: Vec<Value> = s
            .matchers
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true}))
            .collect();
        matchers.extend(s.patterns.iter().map(|m| {
            let (regex, equal) = match m.op() {
                MatchOp::Eq => (false, true),
                MatchOp::NotEq => (false, false),
                MatchOp::Regex => (true, true),
                MatchOp::NotRegex => (true, false),
            };
            json!({"name": m.label(), "value": m.value(), "isRegex": regex, "isEqual": equal})
        }));
        let body = json!({
            "matchers": matchers,
            "startsAt": s.starts.rfc3339(),
            "endsAt": s.ends.rfc3339(),
            "createdBy": s.created_by,
            "comment": s.comment,
        });
        let response = self
            .client
            .post(format!("{}/api/v2/silences", self.base_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("Alertmanager did not answer: {}", without_url(&e)))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("Alertmanager answered {status}: {answer}"));
        }
        answer
            .get("silenceID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "Alertmanager's answer has no silenceID".to_string())
    }

    /// `DELETE /api/v2/silence/{id}`; one that no longer exists counts as expired.
    async fn expire_silence(&self, id: &str) -> Result<(), String> {
        let response = self
            .client
            .delete(format!("{}/api/v2/silence/{id}", self.base_url))
            .send()
            .await
            .map_err(|e| format!("Alertmanager did not answer: {}", without_url(&e)))?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(format!("Alertmanager answered {s} for silence {id}")),
        }
    }
}

impl AlertmanagerApi {
    /// `GET /api/v2/alerts` with one `filter` per label (active, silenced and
    /// inhibited alerts alike) and, when given, the receiver as an anchored,
    /// escaped regular expression.
    async fn list_alerts(
        &self,
        matchers: &BTreeMap<String, String>,
        receiver: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        let mut query: Vec<(&str, String)> = matchers
            .iter()
            .map(|(k, v)| {
                (
                    "filter",
                    format!("{k}={}", serde_json::Value::from(v.as_str())),
                )
            })
            .collect();
        query.push(("active", "true".into()));
        query.push(("silenced", "true".into()));
        query.push(("inhibited", "true".into()));
        if let Some(receiver) = receiver.filter(|r| !r.is_empty()) {
            query.push(("receiver", format!("^(?:{})$", regex::escape(receiver))));
        }
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v2/alerts", self.base_url), &query)
                .map_err(|e| format!("Alertmanager's URL is not valid: {e}"))?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("Alertmanager did not answer: {}", without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "Alertmanager answered {status} when asked for active alerts"
            ));
        }
        let alerts: Value = response
            .json()
            .await
            .map_err(|e| format!("Alertmanager's answer is not JSON: {}", without_url(&e)))?;
        match alerts {
            Value::Array(a) => Ok(a),
            _ => Err("Alertmanager's answer is not a list of alerts".to_string()),
        }
    }
}

impl Alertmanager for AlertmanagerApi {
    fn create<'a>(&'a self, silence: &'a NewSilence) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.create_silence(silence))
    }

    fn expire<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.expire_silence(id))
    }

    fn active_alerts<'a>(
        &'a self,
        matchers: &'a BTreeMap<String, String>,
        receiver: &'a str,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let alerts = self.list_alerts(matchers, Some(receiver)).await?;
            Ok(u64::try_from(alerts.len()).unwrap_or(u64::MAX))
        })
    }

    fn matching_alerts<'a>(
        &'a self,
        matchers: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Vec<ListedAlert>, String>> {
        Box::pin(async move {
            let alerts = self.list_alerts(matchers, None).await?;
            Ok(alerts
                .iter()
                .map(|a| ListedAlert {
                    fingerprint: a
                        .get("fingerprint")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    labels: a
                        .get("labels")
                        .and_then(|l| serde_json::from_value(l.clone()).ok())
                        .unwrap_or_default(),
                    starts_at: a
                        .get("startsAt")
                        .and_then(Value::as_str)
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map(Millis::from_timestamp),
                })
                .collect())
        })
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "Alertmanager");
    }
    s
}
