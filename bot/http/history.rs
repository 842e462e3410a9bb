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
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::app::App;
use crate::incident::IncidentRef;
use crate::store::incidents;
use crate::time::Millis;
use crate::usecases::postmortem;
use crate::web::history::{self, ListQuery};

/// The address a request came from, as the listener saw it (set by the server
/// on every connection).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "klaxon_history";

/// How long a sign-in lasts.
pub const SESSION_FOR: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);

/// The session cookie's signature of `expires` (ms): HMAC-SHA256 keyed with
/// the token (a new token ends every session).
fn session_mac(token: &secrecy::SecretString, expires: i64) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    match Hmac::<sha2::Sha256>::new_from_slice(token.expose_secret().as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("klaxon history session v2:{expires}").as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// The cookie value of a session that ends at `expires` (ms): `EXPIRES.MAC`.
fn session_value(token: &secrecy::SecretString, expires: Millis) -> String {
    format!("{}.{}", expires.0, session_mac(token, expires.0))
}

/// Whether the request carries a session cookie signed with `token` that has
/// not ended by `now` (the end is signed, so it cannot be pushed back).
fn cookie_matches(headers: &HeaderMap, token: &secrecy::SecretString, now: Millis) -> bool {
    use subtle::ConstantTimeEq;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .filter_map(|(_, value)| value.split_once('.'))
        .any(|(expires, mac)| {
            let Ok(expires) = expires.parse::<i64>() else {
                return false;
            };
            let expected = session_mac(token, expires);
            expires > now.0
                && !expected.is_empty()
                && mac.len() == expected.len()
                && bool::from(mac.as_bytes().ct_eq(expected.as_bytes()))
        })
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Where to go after signing in: a history page, never elsewhere.
fn next_page(next: &str) -> &str {
    let safe = next.starts_with("/incidents")
        && !next.contains("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic());
    if safe { next } else { "/incidents" }
}

fn login_page(status: StatusCode, error: Option<&str>, next: &str) -> Response {
    let html_text = crate::web::render(
        "login",
        &serde_json::json!({
            "title": "Sign in — incident history",
            "site": "Klaxon",
            "feeds": false,
            "error": error,
            "action": "/incidents/login",
            "next": next_page(next),
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
pub fn refusal(app: &App, headers: &HeaderMap, peer: Option<Peer>, path: &str) -> Option<Response> {
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
        && (super::bearer_matches(headers, t) || cookie_matches(headers, t, app.ctx.clock.now()))
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
        return Some(login_page(StatusCode::UNAUTHORIZED, None, path));
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            if token.is_some() {
                "unauthorized: send Authorization: Bearer <KLAXON_HISTORY_TOKEN>\n"
            } else {
                "unauthorized: sign in through the proxy in front of Klaxon ([history] trusted_proxies)\n"
            },
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

/// A page saying what went wrong (400, 404): HTML for a browser, else text.
fn problem(status: StatusCode, headers: &HeaderMap, text: &str) -> Response {
    if !wants_html(headers) {
        return (status, format!("{text}\n")).into_response();
    }
    html(
        status,
        crate::web::render(
            "message",
            &serde_json::json!({
                "title": text,
                "site": "Klaxon",
                "feeds": false,
                "heading": status.canonical_reason().unwrap_or("Error"),
                "text": text,
                "footer": "Klaxon",
            }),
        ),
    )
}

/// The request's path and query, for the sign-in form to come back to.
fn asked_for(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/incidents".to_string())
}

/// `GET /incidents`.
pub async fn list(
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(refused) = refusal(&app, &headers, peer.map(|p| p.0), &asked_for(&uri)) {
        return refused;
    }
    // The first of each field; a field given twice is not an error.
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let first = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let query = ListQuery {
        severity: first("severity"),
        source: first("source"),
        month: first("month"),
        page: first("page"),
    };
    let ctx = &app.ctx;
    match history::list(ctx.store.pool(), &query, ctx.clock.now()).await {
        Ok(Ok(page)) => html(StatusCode::OK, page),
        Ok(Err(bad)) => problem(StatusCode::BAD_REQUEST, &headers, &bad.0),
        Err(e) => unavailable(e),
    }
}

/// `GET /incidents/{ref}`.
pub async fn incident(
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    uri: Uri,
    Path(reference): Path<String>,
) -> Response {
    if let Some(refused) = refusal(&app, &headers, peer.map(|p| p.0), &asked_for(&uri)) {
        return refused;
    }
    let Ok(r) = reference.parse::<IncidentRef>() else {
        return problem(
            StatusCode::NOT_FOUND,
            &headers,
            "Not found: refs look like INC-12.",
        );
    };
    tracing::Span::current().record("incident", tracing::field::display(r));
    let ctx = &app.ctx;
    match history::incident(ctx.store.pool(), &ctx.settings.status, r, ctx.clock.now()).await {
        Ok(Some(page)) => html(StatusCode::OK, page),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            &headers,
            &format!("{r} does not exist."),
        ),
        Err(e) => unavailable(e),
    }
}

/// `POST /incidents/login`: the token typed into the form → the session
/// cookie (for [`SESSION_FOR`]) and back to the page asked for; a wrong or
/// missing token → the form again, 401.
pub async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use subtle::ConstantTimeEq;
    let Some(token) = &app.ctx.settings.history_token else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    // The first of each field; anything else in the form is ignored.
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let next = next_page(field("next")).to_string();
    let given = field("token").trim().as_bytes();
    let expected = token.expose_secret().as_bytes();
    if given.len() != expected.len() || !bool::from(given.ct_eq(expected)) {
        tracing::warn!("refused a history sign-in: wrong token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some(if given.is_empty() {
                "Type the history token."
            } else {
                "That is not the history token."
            }),
            &next,
        );
    }
    let expires = app.ctx.clock.now().plus(SESSION_FOR);
    // `Secure` when the request came over HTTPS (as a proxy says): the
    // browser then never sends the cookie in the clear.
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, next),
            (
                header::SET_COOKIE,
                format!(
                    "{SESSION_COOKIE}={}; Path=/incidents; HttpOnly; SameSite=Strict; Max-Age={}{}",
                    session_value(token, expires),
                    SESSION_FOR.as_secs(),
                    if secure { "; Secure" } else { "" }
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
    uri: Uri,
) -> Response {
    if let Some(refused) = refusal(&app, &headers, peer.map(|p| p.0), &asked_for(&uri)) {
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
