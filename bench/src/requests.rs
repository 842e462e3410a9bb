//! The requests the bench sends: slash commands signed exactly as Slack signs
//! them, and Alertmanager webhook notifications (payload version 4).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};

use crate::load::Maker;

pub const CHANNEL: &str = "C0BENCH";

/// Numbers every slash command of the run: Klaxon ignores a signed request it
/// has seen before (a replay), so no two may be byte-for-byte the same.
static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);
pub const USER: &str = "U0BENCH";

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(512);
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_encode(k, &mut out);
        out.push('=');
        form_encode(v, &mut out);
    }
    out
}

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, as Slack computes it.
pub fn slack_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a slash command says; `{n}` in `Numbered` becomes a unique number.
#[derive(Clone)]
pub enum Text {
    Fixed(&'static str),
    /// A prefix followed by a number unique in the whole bench run.
    Numbered(&'static str, Arc<AtomicU64>),
}

/// Signed `/incident …` slash commands to `path` (Klaxon's `/slack/commands`,
/// or the baseline's `/`, which receives the very same bytes).
pub struct SlashCommand {
    pub host: String,
    pub path: &'static str,
    pub secret: Arc<str>,
    pub text: Text,
    pub fake_slack: String,
    pub seq: u64,
}

impl Maker for SlashCommand {
    fn next(&mut self) -> Request<Full<Bytes>> {
        self.seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let text = match &self.text {
            Text::Fixed(t) => (*t).to_string(),
            Text::Numbered(prefix, n) => format!("{prefix}{}", n.fetch_add(1, Ordering::Relaxed)),
        };
        let trigger = format!(
            "1337.{}.{:032x}",
            self.seq,
            self.seq.wrapping_mul(0x9e37_79b9)
        );
        let response_url = format!(
            "{}/commands/T0BENCH/{}/{:024x}",
            self.fake_slack,
            self.seq,
            self.seq.wrapping_mul(31)
        );
        let body = form(&[
            ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
            ("team_id", "T0BENCH"),
            ("team_domain", "bench"),
            ("channel_id", CHANNEL),
            ("channel_name", "incidents"),
            ("user_id", USER),
            ("user_name", "bench"),
            ("command", "/incident"),
            ("text", &text),
            ("api_app_id", "A0BENCH"),
            ("is_enterprise_install", "false"),
            ("response_url", &response_url),
            ("trigger_id", &trigger),
        ]);
        let ts = unix_secs().to_string();
        let signature = slack_signature(&self.secret, &ts, body.as_bytes());
        Request::builder()
            .method(Method::POST)
            .uri(self.path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("x-slack-signature", signature)
            .header("x-slack-request-timestamp", ts)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request")
    }
}

/// Alertmanager notifications with 10 alerts each. Three in four are a new
/// alert group (a new incident, or folded into the alert-storm incident once
/// the route's cap of new incidents a minute is reached); every fourth is the
/// exact notification this connection sent two requests earlier, as an
/// Alertmanager HA peer or a retry would deliver it (Klaxon answers
/// `{"status":"duplicate"}`).
pub struct AlertNotification {
    pub host: String,
    pub token: Arc<str>,
    pub groups: Arc<AtomicU64>,
    /// Requests this connection made so far.
    pub count: u64,
    /// The last two bodies, newest last.
    pub recent: [Bytes; 2],
}

pub const ALERTS_PER_NOTIFICATION: usize = 10;

/// RFC 3339 UTC (`2026-05-01T12:00:00Z`) of a Unix time in seconds.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn alert_body(group: u64) -> Bytes {
    let name = "BenchHighLatency";
    let group_label = format!("g{group}");
    let starts = rfc3339(unix_secs().saturating_sub(120));
    let alerts: Vec<serde_json::Value> = (0..ALERTS_PER_NOTIFICATION)
        .map(|j| {
            serde_json::json!({
                "status": "firing",
                "labels": {
                    "alertname": name,
                    "group": group_label,
                    "instance": format!("host-{j}.bench:9100"),
                    "job": "node",
                    "severity": "warning",
                    "service": "bench",
                },
                "annotations": {
                    "summary": format!("p99 latency above 500 ms on host-{j}"),
                    "runbook_url": "https://runbooks.example.com/latency",
                },
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.bench:9090/graph?g0.expr=latency",
                "fingerprint": format!("{:016x}", group.wrapping_mul(1_000_003).wrapping_add(j as u64)),
            })
        })
        .collect();
    let body = serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{name}\", group=\"{group_label}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "klaxon",
        "groupLabels": {"alertname": name, "group": group_label},
        "commonLabels": {"alertname": name, "group": group_label, "job": "node", "severity": "warning", "service": "bench"},
        "commonAnnotations": {"runbook_url": "https://runbooks.example.com/latency"},
        "externalURL": "http://alertmanager.bench:9093",
        "alerts": alerts,
    });
    Bytes::from(body.to_string())
}

impl Maker for AlertNotification {
    fn next(&mut self) -> Request<Full<Bytes>> {
        let body = if self.count % 4 == 3 {
            self.recent[0].clone()
        } else {
            alert_body(self.groups.fetch_add(1, Ordering::Relaxed))
        };
        self.count += 1;
        self.recent = [self.recent[1].clone(), body.clone()];
        Request::builder()
            .method(Method::POST)
            .uri("/alerts/alertmanager")
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(body))
            .expect("a valid request")
    }
}

/// One Alertmanager notification of `n` alerts in one group, each with a dozen
/// labels and a paragraph of annotations, as a big Kubernetes group looks.
pub fn big_notification(n: usize) -> Bytes {
    let starts = rfc3339(unix_secs().saturating_sub(600));
    let alerts: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "status": "firing",
                "labels": {
                    "alertname": "KubePodNotReady", "namespace": "shop", "pod": format!("checkout-7d9f8b6c4-{i:05}"),
                    "container": "checkout", "node": format!("node-{:03}", i % 200), "severity": "warning",
                    "job": "kube-state-metrics", "instance": "10.0.3.17:8080", "service": "kube-state-metrics",
                    "team": "payments", "cluster": "prod-eu-1", "prometheus": "monitoring/k8s",
                },
                "annotations": {
                    "summary": format!("Pod shop/checkout-7d9f8b6c4-{i:05} has been in a non-ready state for longer than 15 minutes."),
                    "description": "Pod has been in a non-ready state for longer than 15 minutes. Check the pod's events (kubectl describe pod), its readiness probe and the node it runs on; a failing dependency (database, payment provider) often makes every replica unready at once.",
                    "runbook_url": "https://runbooks.example.com/kubernetes/kubepodnotready",
                },
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.bench:9090/graph?g0.expr=kube_pod_status_ready%7Bcondition%3D%22true%22%7D+%3D%3D+0",
                "fingerprint": format!("{:016x}", 0x5eed_0000_u64 + i as u64),
            })
        })
        .collect();
    let body = serde_json::json!({
        "version": "4",
        "groupKey": "{}/{severity=\"warning\"}:{alertname=\"KubePodNotReady\", namespace=\"shop\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "klaxon",
        "groupLabels": {"alertname": "KubePodNotReady", "namespace": "shop"},
        "commonLabels": {"alertname": "KubePodNotReady", "namespace": "shop", "severity": "warning"},
        "commonAnnotations": {"runbook_url": "https://runbooks.example.com/kubernetes/kubepodnotready"},
        "externalURL": "http://alertmanager.bench:9093",
        "alerts": alerts,
    });
    Bytes::from(body.to_string())
}

/// A slash command is answered 200 even when Klaxon failed (the person sees an
/// ephemeral apology), so the text is checked too.
pub fn classify_slash(status: StatusCode, body: &[u8]) -> Result<&'static str, String> {
    if status != StatusCode::OK {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let text = String::from_utf8_lossy(body);
    if text.contains("already handled") {
        return Err("200 'already handled' (taken for a replay)".into());
    }
    if text.contains("could not do that just now") {
        return Err("200 with the 'database did not answer' reply".into());
    }
    if text.contains("⚠️") {
        let short: String = text.chars().take(80).collect();
        return Err(format!("200 with a warning reply: {short}"));
    }
    Ok("ok 200")
}

pub fn classify_any_2xx(status: StatusCode, _body: &[u8]) -> Result<&'static str, String> {
    if status.is_success() {
        Ok("ok 2xx")
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

pub fn classify_alert(status: StatusCode, body: &[u8]) -> Result<&'static str, String> {
    if !status.is_success() {
        let short: String = String::from_utf8_lossy(body).chars().take(80).collect();
        return Err(format!("HTTP {}: {short}", status.as_u16()));
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    Ok(match v.get("status").and_then(|s| s.as_str()) {
        Some("duplicate") => "ok 2xx duplicate",
        _ if v.get("folded_into_storm").and_then(|f| f.as_bool()) == Some(true) => {
            "ok 2xx folded into the storm incident"
        }
        _ if v.get("opened").and_then(|f| f.as_bool()) == Some(true) => "ok 2xx opened an incident",
        _ => "ok 2xx",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn signature_matches_slacks_example() {
        // The example in Slack's "Verifying requests from Slack" guide.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            slack_signature(
                "8f742231b10e8888abcd99yyyzzz85a5",
                "1531420618",
                body.as_bytes()
            ),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form(&[("text", "open P2 bench 1"), ("c", "/incident")]),
            "text=open+P2+bench+1&c=%2Fincident"
        );
    }
}
