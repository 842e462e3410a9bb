//! The state a running Klaxon shares between its HTTP handlers and its workers.
//!
//! [`App`] is data, not wiring: the use cases' context, the Slack Web API client
//! (for the calls that cannot wait in the outbox, like opening a form), and the
//! verifier of Slack's signatures. `crate::server` builds it and runs it.

use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use std::sync::Arc;

use crate::slack::api::SlackApi;
use crate::usecases::Ctx;

/// Everything a request handler may need.
pub struct App {
    /// Set once the database answered and its migrations ran: `/readyz` is 200
    /// only then, and the job lanes and the outbox sender start then.
    pub database_ready: std::sync::atomic::AtomicBool,
    /// The use cases' context (store, clock, settings, templates, metrics …).
    pub ctx: Ctx,
    pub slack: Arc<SlackApi>,
    /// `None` when no signing secret is configured: every Slack request is refused.
    pub verifier: Option<SlackEventSignatureVerifier>,
    /// The Events API event ids being handled right now on this replica: a
    /// redelivery that comes meanwhile is asked to come again, not taken for
    /// a duplicate of work that may still fail (`crate::inbound`).
    pub events_in_flight: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The status page as last read, shared by every request for it.
    pub status_page: crate::web::status::Cache,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("ctx", &self.ctx)
            .field("slack", &self.slack)
            .field("verifies_signatures", &self.verifier.is_some())
            .finish()
    }
}
