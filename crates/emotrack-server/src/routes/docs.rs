//! `/openapi.json` (generated from the handlers' annotations by utoipa) and `/docs`, the
//! same document as a page a person reads. The page is rendered on the server from the
//! document, so it needs no script and nothing from another site.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::Json;
use axum::response::Html;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::{analyze, health, stream, videos};

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "emotrack",
        description = "Real-time facial emotion recognition: faces, seven emotions (angry, \
            disgust, fear, happy, neutral, sad, surprise) and a vibe message, for images, \
            live streams (WebSocket) and uploaded videos. Errors are JSON: \
            `{\"error\": \"<code>\", \"message\": \"<what to change>\"}`. When the server was \
            started with a token, every /v1 route needs `Authorization: Bearer <token>`."
    ),
    paths(
        analyze::analyze,
        stream::stream,
        videos::create,
        videos::get,
        videos::delete,
        videos::file,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    components(schemas(
        analyze::AnalyzeResponse,
        stream::FrameMessage,
        crate::jobs::JobView,
        crate::error::ErrorBody,
        health::Status,
    )),
    modifiers(&BearerToken),
    tags(
        (name = "images", description = "Analyse one image"),
        (name = "streams", description = "Analyse a live stream over a WebSocket"),
        (name = "videos", description = "Analyse an uploaded video in the background"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// Declares the optional bearer token.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The OpenAPI 3.1 document of this API.
pub async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

/// The API reference as a page.
pub async fn page() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| render(document())))
}

fn render(doc: &utoipa::openapi::OpenApi) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=en><meta charset=utf-8>\
         <meta name=viewport content='width=device-width,initial-scale=1'>\
         <title>emotrack API</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
         code{background:#f3f3f3;padding:0 .25rem;border-radius:3px}\
         h2{border-bottom:1px solid #ddd;margin-top:2.5rem}\
         .op{margin:1.5rem 0}.m{font-weight:700;display:inline-block;min-width:4.5rem}\
         table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}\
         </style>",
    );
    let _ = write!(
        html,
        "<h1>{} API</h1><p>{}</p><p>Machine-readable: <a href=/openapi.json>/openapi.json</a></p>",
        escape(&doc.info.title),
        escape(doc.info.description.as_deref().unwrap_or_default())
    );
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                render_operation(&mut html, method, path, op);
            }
        }
    }
    html
}

fn render_operation(html: &mut String, method: &str, path: &str, op: &Operation) {
    let _ = write!(
        html,
        "<div class=op><h2><span class=m>{method}</span> <code>{}</code></h2><p><b>{}</b></p>",
        escape(path),
        escape(op.summary.as_deref().unwrap_or_default())
    );
    if let Some(d) = &op.description {
        let _ = write!(html, "<p>{}</p>", escape(d));
    }
    if let Some(params) = op.parameters.as_ref().filter(|p| !p.is_empty()) {
        html.push_str("<table><tr><th>Parameter</th><th>In</th><th>Description</th></tr>");
        for p in params {
            let place = match p.parameter_in {
                ParameterIn::Query => "query",
                ParameterIn::Path => "path",
                ParameterIn::Header => "header",
                ParameterIn::Cookie => "cookie",
            };
            let _ = write!(
                html,
                "<tr><td><code>{}</code></td><td>{place}</td><td>{}</td></tr>",
                escape(&p.name),
                escape(p.description.as_deref().unwrap_or_default())
            );
        }
        html.push_str("</table>");
    }
    html.push_str("<table><tr><th>Status</th><th>Meaning</th></tr>");
    for (status, response) in &op.responses.responses {
        let text = match response {
            utoipa::openapi::RefOr::T(r) => r.description.clone(),
            utoipa::openapi::RefOr::Ref(r) => r.ref_location.clone(),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(status),
            escape(&text)
        );
    }
    html.push_str("</table></div>");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
