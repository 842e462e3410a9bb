//! Any headers and body: the signature check answers, never panics, and never
//! accepts a signature it did not compute.
#![no_main]
use axum::http::HeaderMap;

libfuzzer_sys::fuzz_target!(|input: (String, String, Vec<u8>)| {
    let (signature, timestamp, body) = input;
    let verifier = slack_morphism::signature_verifier::SlackEventSignatureVerifier::new(
        &slack_morphism::prelude::SlackSigningSecret::new("fuzz-secret".into()),
    );
    let mut headers = HeaderMap::new();
    if let (Ok(s), Ok(t)) = (signature.parse(), timestamp.parse()) {
        headers.insert("x-slack-signature", s);
        headers.insert("x-slack-request-timestamp", t);
    }
    if klaxon::http::signature::verify(Some(&verifier), &headers, &body).is_ok() {
        assert_eq!(signature, klaxon::http::signature::sign("fuzz-secret", &timestamp, &body));
    }
});
