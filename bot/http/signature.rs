//! Slack request signing: `v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")`.
//!
//! The comparison is constant-time and a timestamp more than five minutes away
//! from now is refused (slack-morphism's verifier does both). Without a signing
//! secret nothing from Slack can be verified, so everything is refused.

use axum::http::HeaderMap;
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};

/// Why a request was refused (each is a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Slack signing secret is not configured on this Klaxon")]
    NotConfigured,
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp header")]
    Missing,
    #[error("request timestamp is more than 5 minutes off")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Signs a body as Slack does (for `klaxon demo`, tests and benchmarks).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the headers Slack sends against the raw body.
pub fn verify(
    verifier: Option<&SlackEventSignatureVerifier>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let verifier = verifier.ok_or(SignatureError::NotConfigured)?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let signature = header(SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER)
        .ok_or(SignatureError::Missing)?;
    let timestamp = header(SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP)
        .ok_or(SignatureError::Missing)?;
    // A body that is not UTF-8 cannot be one Slack signed (Slack sends form or JSON text).
    let body = std::str::from_utf8(body).map_err(|_| SignatureError::Mismatch)?;
    verifier
        .verify(signature, body, timestamp)
        .map_err(|e| match e {
            SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_) => {
                SignatureError::Stale
            }
            SlackEventSignatureVerifierError::AbsentSignatureError(_) => SignatureError::Missing,
            SlackEventSignatureVerifierError::CryptoInitError(_) => SignatureError::NotConfigured,
            SlackEventSignatureVerifierError::WrongSignatureError(_) => SignatureError::Mismatch,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::prelude::SlackSigningSecret;

    fn headers(sig: &str, ts: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-slack-signature", sig.parse().expect("header"));
        h.insert("x-slack-request-timestamp", ts.parse().expect("header"));
        h
    }

    fn sign(secret: &str, ts: &str, body: &str) -> String {
        super::sign(secret, ts, body.as_bytes())
    }

    #[test]
    fn a_correct_signature_passes_and_any_change_fails() {
        let v = SlackEventSignatureVerifier::new(&SlackSigningSecret::new("s3cret".into()));
        let now = jiff::Timestamp::now().as_second();
        let ts = now.to_string();
        let body = "text=open+P1+x&user_id=U1";
        let good = sign("s3cret", &ts, body);
        assert_eq!(
            verify(Some(&v), &headers(&good, &ts), body.as_bytes()),
            Ok(())
        );
        assert_eq!(
            verify(Some(&v), &headers(&good, &ts), b"text=open+P0+x&user_id=U1"),
            Err(SignatureError::Mismatch)
        );
        let other = sign("wrong", &ts, body);
        assert_eq!(
            verify(Some(&v), &headers(&other, &ts), body.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        let old = (now - 301).to_string();
        let stale = sign("s3cret", &old, body);
        assert_eq!(
            verify(Some(&v), &headers(&stale, &old), body.as_bytes()),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&v), &HeaderMap::new(), body.as_bytes()),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(None, &headers(&good, &ts), body.as_bytes()),
            Err(SignatureError::NotConfigured)
        );
    }
}
