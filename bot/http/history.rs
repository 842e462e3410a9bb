//! The team's pages over HTTP: the incident history (`GET /incidents`,
//! `GET /incidents/INC-n`) and the postmortem draft
//! (`GET /incidents/INC-n/postmortem.md`), rendered from the record as it is now.
//!
//! Who may see them ([`refusal`]), any one of:
//! - `Authorization: Bearer <KLAXON_HISTORY_TOKEN>` (scripts, curl);
//! - the session cookie a browser gets by typing the token into the sign-in
//!   form (`POST /incidents/login`): an HMAC of the token, `HttpOnly`,
//!   `SameSite=Strict`, so the token itself is never stored in the browser;
//! - a request from a trusted proxy (`[history] trusted_proxies`) that
//!   carries `[history] trusted_proxy_header` (oauth2-proxy's
//!   `X-Forwarded-User`, say): the proxy has signed the person in.
//!
//! With neither a token nor a proxy configured these pages do not exist
//! (404): an incident's record names people and systems and must not be
//! public by accident. Everything else gets 401 (tokens compared in constant
//! time) and is logged (and counted in `http_requests_total` by status).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::app::App;
use crate::incident::IncidentRef;
use crate::store::incidents;
use crate::usecases::postmortem;
use crate::web::history::{self, ListQuery};

/// The address a request came from, as the listener saw it (set by the server
/// on every connection).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "klaxon_history";

/// The session cookie's value for `token`: HMAC-SHA256 of a fixed label,
/// keyed with the token (a new token ends every session).
fn session_value(token: &secrecy::SecretString) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    match Hmac::<sha2::Sha256>::new_from_slice(token.expose_secret().as_bytes()) {
        Ok(mut mac) => {
            mac.update(b"klaxon history session v1");
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn cookie_matches(headers: &HeaderMap, token: &secrecy::SecretString) -> bool {
    use subtle::ConstantTimeEq;
    let expected = session_value(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| {
            name == SESSION_COOKIE
                && !expected.is_empty()
                && value.len() == expected.len()
                && bool::from(value.as_bytes().ct_eq(expected.as_bytes()))
        })
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let html_text = crate::web::render(
        "login",
        &serde_json::json!({
            "title": "Sign in — incident history",
            "site": "Klaxon",
            "feeds": false,
            "error": error,
            "action": "/incidents/login",
            "footer": "Klaxon",
        }),
    );
    let mut answer = html(status, html_text);
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    answer
}

/// `None` when this request may see the team's pages, else the answer to send.
pub fn refusal(app: &App, headers: &HeaderMap, peer: Option<Peer>) -> Option<Response> {
    let settings = &app.ctx.settings;
    let token = settings.history_token.as_ref();
    let proxy = settings.history_proxy.as_ref();
    if token.is_none() && proxy.is_none() {
        return Some((
            StatusCode::NOT_FOUND,
            "not found: set KLAXON_HISTORY_TOKEN (or [history] trusted_proxy_header) to serve the incident history\n",
        )
            .into_response());
    }
    if let Some(t) = token
        && (super::bearer_matches(headers, t) || cookie_matches(headers, t))
    {
        return None;
    }
    if let (Some(p), Some(Peer(ip))) = (proxy, peer)
        && p.addresses.contains(&ip)
        && headers
            .get(&p.header)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty())
    {
        return None;
    }
    tracing::warn!(peer = ?peer.map(|p| p.0), "refused a history request: no valid token, session or trusted proxy");
    if token.is_some() && wants_html(headers) {
        return Some(login_page(StatusCode::UNAUTHORIZED, None));
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized: send Authorization: Bearer <KLAXON_HISTORY_TOKEN>\n",
        )
            .into_response(),
    )
}

/// A page of the history: never cached, nothing loaded from elsewhere.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "private, no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                super::status::CONTENT_SECURITY_POLICY,
            ),
        ],
        body,
    )
        .into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "could not read the incident history");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "the database did not answer; try again\n",
    )
        .into_response()
}

/// `GET /incidents`.
pub async fn list(
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(refused) = refusal(&app, &headers, peer.map(|p| p.0)) {
        return refused;
    }
    let ctx = &app.ctx;
    match history::list(ctx.store.pool(), &query, ctx.clock.now()).await {
        Ok(Ok(page)) => html(StatusCode::OK, page),
        Ok(Err(bad)) => (StatusCode::BAD_REQUEST, format!("{}\n", bad.0)).into_response(),
        Err(e) => unavailable(e),
    }
}

/// `GET /incidents/{ref}`.
pub async fn incident(
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    if let Some(refused) = refusal(&app, &headers, peer.map(|p| p.0)) {
        return refused;
    }
    let Ok(r) = reference.parse::<IncidentRef>() else {
        return (StatusCode::NOT_FOUND, "not found: refs look like INC-12\n").into_response();
    };
    tracing::Span::current().record("incident", tracing::field::display(r));
    let ctx = &app.ctx;
    match history::incident(ctx.store.pool(), &ctx.settings.status, r, ctx.clock.now()).await {
        Ok(Some(page)) => html(StatusCode::OK, page),
        Ok(None) => (StatusCode::NOT_FOUND, format!("{r} does not exist\n")).into_response(),
        Err(e) => unavailable(e),
    }
}

/// The sign-in form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /incidents/login`: the token typed into the form → the session
/// cookie and back to the history; a wrong token → the form again, 401.
pub async fn login(State(app): State<Arc<App>>, Form(form): Form<Login>) -> Response {
    use subtle::ConstantTimeEq;
    let Some(token) = &app.ctx.settings.history_token else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let given = form.token.trim().as_bytes();
    let expected = token.expose_secret().as_bytes();
    if given.len() != expected.len() || !bool::from(given.ct_eq(expected)) {
        tracing::warn!("refused a history sign-in: wrong token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the history token."),
        );
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/incidents".to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{SESSION_COOKIE}={}; Path=/incidents; HttpOnly; SameSite=Strict; Max-Age=43200",
                    session_value(token)
                ),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// `GET /incidents/{ref}/postmortem.md`.
pub async fn postmortem(
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&app, &headers, peer.map(|p| p.0)) {
        return refused;
    }
    let Ok(r) = reference.parse::<IncidentRef>() else {
        return (StatusCode::NOT_FOUND, "not found: refs look like INC-12\n").into_response();
    };
    tracing::Span::current().record("incident", tracing::field::display(r));
    let ctx = &app.ctx;
    let rendered = async {
        let mut tx = ctx.begin().await?;
        let Some(incident) = incidents::get(&mut *tx, r).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let doc = postmortem::document(ctx, &mut tx, &incident, ctx.clock.now()).await?;
        tx.rollback().await?;
        Ok::<_, crate::usecases::Error>(Some(doc))
    }
    .await;
    match rendered {
        Ok(Some(doc)) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    "text/markdown; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", postmortem::file_name(r)),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            doc,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("{r} does not exist\n")).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "could not render a postmortem");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer; try again\n",
            )
                .into_response()
        }
    }
}
