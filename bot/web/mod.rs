//! Klaxon's web pages: the public status page (HTML, JSON, RSS and Atom)
//! and the team's incident history, rendered on the server from the store.
//!
//! No JavaScript and no third-party asset: HTML from the handlebars
//! templates in `templates/web/` (HTML-escaped, strict: a misspelt field is
//! an error), one inline stylesheet, charts as inline SVG ([`charts`]).
//! The HTTP handlers that serve them (and decide who may see the history)
//! are in `crate::http::pages`.

pub mod charts;
pub mod history;
pub mod status;

use std::sync::OnceLock;

use handlebars::Handlebars;
use serde::Serialize;

/// The pages' templates, compiled once.
fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        let templates = [
            ("head", include_str!("../../templates/web/head.html.hbs")),
            ("foot", include_str!("../../templates/web/foot.html.hbs")),
            (
                "status",
                include_str!("../../templates/web/status.html.hbs"),
            ),
            (
                "incidents",
                include_str!("../../templates/web/incidents.html.hbs"),
            ),
            (
                "incident",
                include_str!("../../templates/web/incident.html.hbs"),
            ),
            ("login", include_str!("../../templates/web/login.html.hbs")),
            (
                "message",
                include_str!("../../templates/web/message.html.hbs"),
            ),
        ];
        for (name, text) in templates {
            // The templates ship inside the binary; a test renders each one.
            if let Err(e) = hb.register_template_string(name, text) {
                tracing::error!(template = name, error = %e, "a web template does not compile");
            }
        }
        hb
    })
}

/// Renders page `name` with `data`; a template error becomes a plain page
/// saying so (and is logged), never a panic.
pub fn render<T: Serialize>(name: &str, data: &T) -> String {
    match registry().render(name, data) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = name, error = %e, "a web page failed to render");
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title></head><body><main><h1>This page failed to render</h1><p>{}</p></main></body></html>",
                handlebars::html_escape(&e.to_string())
            )
        }
    }
}

/// `2026-11-22 17:04 UTC`.
pub fn when(m: crate::time::Millis) -> String {
    m.date_time_utc()
}

/// A duration as the pages print it (`1h 12m`), or an em dash.
pub fn duration(d: Option<std::time::Duration>) -> String {
    d.map(crate::time::human_duration)
        .unwrap_or_else(|| "—".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_page_template_compiles() {
        assert_eq!(super::registry().get_templates().len(), 7);
    }
}
