//! Approved actions: the checks and restarts the runbooks have engineers type
//! by hand, run from the incident thread instead.
//!
//! Only actions in the configured catalog can run. Each names a back end
//! ([`Backend`]: `http`, `docker`, `command`), its fixed settings, and the
//! parameters a person may fill in — each an enum of allowed values or a strict
//! anchored pattern, checked before anything reaches a back end. A back end
//! reads an action's settings once, at config load, into typed values
//! ([`Configured`]), and turns validated parameter values into a [`Step`]: the
//! exact thing that will run, which `--dry-run`, approval requests and the
//! audit log describe.
//!
//! Adding a back end (Kubernetes rollout restart, systemd …) means one new
//! module implementing [`Backend`] and one line in [`catalog::backends`]. Who may run
//! what, approvals and the audit log are the use case's business
//! (`crate::usecases::actions`), not a back end's.
//!
//! - [`catalog`]: the `[[actions]]` config and its validation.
//! - [`http`], [`docker`], [`command`]: the back ends.

pub mod catalog;
pub mod command;
pub mod docker;
pub mod http;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::Regex;

/// Validated parameter values, by name.
pub type Values = BTreeMap<String, String>;

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    /// One line: `exit 0`, `HTTP 200`, `restarted; running since 17:40:16 UTC`.
    pub summary: String,
    /// The last lines of output (already capped; redacted later).
    pub output: String,
    pub duration: Duration,
}

/// The exact thing that will run, parameters filled in.
pub trait Step: Send + Sync {
    /// For people: `docker restart codexos-web (stop timeout 10s)`.
    fn describe(&self) -> String;
    /// What the concurrency limit counts: runs on the same target wait for each other.
    fn target(&self) -> String;
    /// The longest it may take.
    fn timeout(&self) -> Duration;
    /// Runs it; never panics, never exceeds its own timeout by much.
    fn run(&self) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>>;
}

/// A kind of action (`http`, `docker`, `command`).
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The `kind` an action names in the catalog.
    fn kind(&self) -> &'static str;
    /// Reads and checks an action's back-end settings, once, at config load.
    /// `params` are the parameter names the action declares. Every problem is
    /// returned, as (key, message).
    fn configure(
        &self,
        settings: &toml::Table,
        params: &[String],
    ) -> Result<Arc<dyn Configured>, Vec<(String, String)>>;
}

/// An action's back-end settings, read and checked: ready to make steps.
pub trait Configured: Send + Sync + std::fmt::Debug {
    /// Whether the action changes nothing (checks may run without approval).
    fn read_only(&self) -> bool;
    /// The step for these (already validated) values.
    fn prepare(&self, values: &Values) -> Result<Box<dyn Step>, String>;
}

/// A back end's typed settings from an action's table. Unknown keys are refused
/// by the back end's `deny_unknown_fields` struct, durations are read by
/// [`crate::time::parse_duration`], and a problem is one `(key, line)`, the
/// key being where in the table it went wrong (`timeout`, `args[2]`).
pub(crate) fn settings_of<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
) -> Result<T, Vec<(String, String)>> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." {
            "settings".to_string()
        } else {
            path
        };
        vec![(key, e.into_inner().message().replace('\n', " "))]
    })
}

/// Every placeholder in `template` that names no declared parameter, as problems of `key`.
pub(crate) fn unknown_placeholders(
    key: &str,
    template: &str,
    params: &[String],
) -> Vec<(String, String)> {
    placeholders(template)
        .into_iter()
        .filter(|p| !params.contains(p))
        .map(|p| (key.to_string(), format!("`{{{p}}}` names no parameter")))
        .collect()
}

/// Replaces `{name}` with the value of parameter `name`; unknown names are errors.
pub fn fill(template: &str, values: &Values) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
        let name = &after[..end];
        let value = values
            .get(name)
            .ok_or_else(|| format!("`{{{name}}}` names no parameter"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The parameter names a template uses.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                names.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    names
}

/// Secret shapes redacted from any output, whatever the configuration, as
/// (pattern, replacement): the providers' documented token formats (Slack,
/// AWS access key ids of every kind, GitHub, GitLab, Stripe, Google, OpenAI,
/// Anthropic, npm, PyPI, SendGrid, Azure storage keys), PEM private keys,
/// credentials in URLs and `Authorization` headers, and any key whose name
/// says secret (`password`, `token`, `secret`, `api_key`, `credential` …)
/// written as `key=value`, `key: value` or JSON `"key": "value"`, which keeps
/// the key and hides the value. The kinds follow the default rules of
/// gitleaks, the usual reference for secret shapes.
static SECRET_SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    const KEY: &str = r"[A-Za-z0-9_.-]*(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|session[_-]?key|auth)[A-Za-z0-9_.-]*";
    let keyed_json = format!(r#"(?i)("{KEY}"\s*:\s*)"(?:[^"\\]|\\.)*""#);
    let keyed_text = format!(
        r#"(?i)(\b{KEY}\s*[=:]\s*)(?:"[^"
]*"|'[^'
]*'|[^\s,;]+)"#
    );
    let shapes: Vec<(String, &'static str)> = vec![
        (
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)".into(),
            "[REDACTED PRIVATE KEY]",
        ),
        (r"(?i)\b(bearer|basic|token)\s+[0-9A-Za-z._~+/=-]{8,}".into(), "${1} [REDACTED]"),
        (keyed_json, r#"$1"[REDACTED]""#),
        (
            format!(r#"(?i)('{KEY}'\s*:\s*)'(?:[^'\\]|\\.)*'"#),
            "${1}'[REDACTED]'",
        ),
        (format!(r"(?i)(<{KEY}>)[^<]*(</)"), "${1}[REDACTED]${2}"),
        (format!(r"(?i)(--{KEY}\s+)[^\s-]\S*"), "${1}[REDACTED]"),
        (
            r"(?i)(\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n]*?\s-p)\S+".into(),
            "${1}[REDACTED]",
        ),
        (
            format!(r#"(?i)(["']{KEY}["']\s*=>\s*)(?:"[^"\n]*"|'[^'\n]*')"#),
            "${1}\"[REDACTED]\"",
        ),
        (format!(r#"(?i)(:{KEY}\s+)"[^"\n]*""#), "${1}\"[REDACTED]\""),
        (
            format!(r#"(?i)(<entry\s+key="{KEY}"\s*>)[^<]*"#),
            "${1}[REDACTED]",
        ),
        (format!(r"(?i)(\b{KEY}%3D)[^&\s]+"), "${1}[REDACTED]"),
        (
            r"(?i)(\bIDENTIFIED\s+BY\s+|\bPASSWORD\s+)'[^'\n]*'".into(),
            "${1}'[REDACTED]'",
        ),
        (
            r"(?i)(\bcurl\b[^\n]*?\s(?:-u|--user)\s*[^:\s]+:)\S+".into(),
            "${1}[REDACTED]",
        ),
        (
            r"(?i)(\b(?:redis-cli|sshpass)\b[^\n]*?\s-[ap]\s*)\S+".into(),
            "${1}[REDACTED]",
        ),
        (r"(?i)(\b(?:set-)?cookie\s*:\s*)[^\n]+".into(), "${1}[REDACTED]"),
        (keyed_text, "${1}[REDACTED]"),
        (r"\bhf_[A-Za-z0-9]{30,}".into(), "[REDACTED]"),
        (r"xox[abposre]-[0-9A-Za-z-]{8,}".into(), "[REDACTED]"),
        (r"xapp-[0-9A-Za-z-]{8,}".into(), "[REDACTED]"),
        (r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+".into(), "[REDACTED]"),
        (r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b".into(), "[REDACTED]"),
        (r"gh[pousr]_[0-9A-Za-z]{20,}".into(), "[REDACTED]"),
        (r"github_pat_[0-9A-Za-z_]{22,}".into(), "[REDACTED]"),
        (r"glpat-[0-9A-Za-z_-]{20,}".into(), "[REDACTED]"),
        (r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}".into(), "[REDACTED]"),
        (r"\bAIza[0-9A-Za-z_-]{35}".into(), "[REDACTED]"),
        (r"\bsk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_-]{20,}".into(), "[REDACTED]"),
        (r"\bnpm_[A-Za-z0-9]{36}\b".into(), "[REDACTED]"),
        (r"\bpypi-[A-Za-z0-9_-]{50,}".into(), "[REDACTED]"),
        (r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}".into(), "[REDACTED]"),
        (r"(?i)AccountKey=[A-Za-z0-9+/=]{40,}".into(), "[REDACTED]"),
        (r"eyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}".into(), "[REDACTED]"),
        (r"://[^\s:/@]+:[^\s@/]+@".into(), "://[REDACTED]@"),
    ];
    shapes
        .into_iter()
        .filter_map(|(p, r)| match Regex::new(&p) {
            Ok(re) => Some((re, r)),
            Err(e) => {
                tracing::error!(pattern = %p, error = %e, "a built-in secret pattern does not compile");
                None
            }
        })
        .collect()
});

/// Replaces secrets in `text`: the built-in shapes ([`SECRET_SHAPES`]) and
/// the action's configured patterns (`redact`).
pub fn redact(text: &str, extra: &[Regex]) -> String {
    let mut out = text.to_string();
    for (re, with) in SECRET_SHAPES.iter() {
        out = re.replace_all(&out, *with).into_owned();
    }
    for re in extra {
        out = re.replace_all(&out, "[REDACTED]").into_owned();
    }
    out
}

/// Keeps the last `lines` lines and at most `bytes` bytes of `text`, saying how much was cut.
pub fn tail(text: &str, lines: usize, bytes: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skipped_lines = all.len().saturating_sub(lines);
    let mut kept = all[skipped_lines..].join("\n");
    let mut note = if skipped_lines > 0 {
        format!("… {skipped_lines} earlier line(s) not shown\n")
    } else {
        String::new()
    };
    if kept.len() > bytes {
        let mut cut = kept.len() - bytes;
        while !kept.is_char_boundary(cut) {
            cut += 1;
        }
        kept = kept[cut..].to_string();
        note = format!("… {cut} earlier byte(s) not shown\n");
    }
    format!("{note}{kept}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parameter values from pairs (the back ends' tests use it too).
    pub(crate) fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_are_filled_only_from_known_parameters() {
        let v = values(&[("service", "web")]);
        assert_eq!(fill("codexos-{service}", &v), Ok("codexos-web".into()));
        assert!(fill("codexos-{other}", &v).is_err());
        assert!(fill("codexos-{service", &v).is_err());
        assert_eq!(placeholders("http://{host}:{port}/x"), vec!["host", "port"]);
    }

    #[test]
    fn secrets_and_token_shapes_are_redacted() {
        let out = redact(
            "token=abc123 xoxb-1111-2222-abcdefgh Bearer eyJhbGciOi.x postgres://app:hunter2@db/x AKIAABCDEFGHIJKLMNOP mine:s3cr3t-value",
            &[Regex::new("s3cr3t-[a-z]+").expect("regex")],
        );
        for secret in [
            "abc123",
            "xoxb-1111",
            "eyJhbGciOi",
            "hunter2",
            "AKIAABCDEFGHIJKLMNOP",
            "s3cr3t-value",
        ] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        assert!(out.contains("[REDACTED]"));
    }

    #[test]
    fn every_built_in_secret_shape_compiles() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        assert_eq!(SECRET_SHAPES.len(), 33, "a pattern failed to compile");
    }

    #[test]
    fn json_quoted_passwords_temporary_aws_keys_and_private_keys_are_redacted() {
        let metadata = r#"{"Code": "Success", "AccessKeyId": "ASIAIOSFODNN7EXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "Token": "IQoJb3JpZ2luX2VjEXAMPLETOKEN=="}"#;
        let config = "db:\n  password: \"hunter two\"\n  api_key='k-123 456'\n";
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\nafter";
        let more = "{'password': 'pyrepr-pass'} passphrase=pp-1 DB_PASS=dbpass-1 REDIS_AUTH=ra-1 mysql -uroot -pS3cretPw --password hunter3 <password>xmlpass</password> hf_abcdefghijklmnopqrstuvwxyz0123456789";
        let more = format!(
            "{more} {}",
            r#""password" => "rb-pass" CREATE USER x IDENTIFIED BY 'sql-pass'; ALTER ROLE y PASSWORD 'pg-pass' curl -u admin:curl-pass https://x redis-cli -a redis-pass ping sshpass -p ssh-pass ssh h Cookie: session=cookie-val <entry key="password">entry-pass</entry> :password "clj-pass" password%3Durl-pass&x=1"#
        );
        let more_out = redact(&more, &[]);
        for secret in [
            "rb-pass",
            "sql-pass",
            "pg-pass",
            "curl-pass",
            "redis-pass",
            "ssh-pass",
            "cookie-val",
            "entry-pass",
            "clj-pass",
            "url-pass",
        ] {
            assert!(!more_out.contains(secret), "{secret} leaked: {more_out}");
        }
        for secret in [
            "pyrepr-pass",
            "pp-1",
            "dbpass-1",
            "ra-1",
            "S3cretPw",
            "hunter3",
            "xmlpass",
            "hf_abc",
        ] {
            assert!(!more_out.contains(secret), "{secret} leaked: {more_out}");
        }
        let misc = "github_pat_11ABCDEFG0123456789abcdefghij glpat-abcdefghij0123456789 sk_live_0123456789abcdef AIzaSyA-0123456789abcdefghijklmnopqrstu Authorization: Basic dXNlcjpwYXNz https://hooks.slack.com/services/T000/B000/XXXX";
        let out = redact(&format!("{metadata}\n{config}\n{pem}\n{misc}"), &[]);
        for secret in [
            "ASIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI",
            "IQoJb3JpZ2lu",
            "hunter two",
            "k-123 456",
            "b3BlbnNzaC1rZXktdjEAAAAA",
            "github_pat_11",
            "glpat-abc",
            "sk_live_0123",
            "AIzaSyA",
            "dXNlcjpwYXNz",
            "T000/B000",
        ] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        for kept in [
            "\"SecretAccessKey\": \"[REDACTED]\"",
            "password: [REDACTED]",
            "after",
            "\"Code\": \"Success\"",
        ] {
            assert!(out.contains(kept), "{kept} missing: {out}");
        }
    }

    #[test]
    fn tail_keeps_the_last_lines_and_says_what_it_cut() {
        let text = (1..=100)
            .map(|n| format!("line {n}"))
            .collect::<Vec<_>>()
            .join("\n");
        let t = tail(&text, 3, 10_000);
        assert_eq!(
            t,
            "… 97 earlier line(s) not shown\nline 98\nline 99\nline 100"
        );
        let t = tail(&"x".repeat(5_000), 10, 100);
        assert!(t.starts_with("… 4900 earlier byte(s) not shown"));
        assert!(t.ends_with(&"x".repeat(100)));
    }
}
