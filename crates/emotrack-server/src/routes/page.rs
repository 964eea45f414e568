//! `/` and `/assets/{file}`: the web page (Live, Photo and Video tabs), plain HTML, CSS and
//! JavaScript modules from `web/`, embedded in the binary so that `emotrack serve` and a
//! browser are all a person needs (no CDN, no build step, works offline).
//!
//! The files' names are not versioned, so every answer says `Cache-Control: no-cache` with a
//! strong `ETag`: a browser revalidates each file (a `304 Not Modified` when unchanged) and
//! never runs stale modules against a newer server. The page keeps to the server's
//! Content-Security-Policy: no inline script, no other origin.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

/// Every file of `web/` (a unit test checks that each file the page names is here).
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("icon.svg", SVG),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("camera.js", JS),
    asset!("drop.js", JS),
    asset!("live.js", JS),
    asset!("overlay.js", JS),
    asset!("panels.js", JS),
    asset!("photo.js", JS),
    asset!("settings.js", JS),
    asset!("socket.js", JS),
    asset!("video.js", JS),
];

/// Revalidate every time (see the module docs).
const CACHE_CONTROL: &str = "no-cache";

/// The page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(
        find("index.html").expect("index.html is embedded"),
        &headers,
    )
}

/// A file of the page (`/assets/app.js`).
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let asset = find(&name)
        .filter(|a| a.name != "index.html")
        .ok_or_else(|| ApiError::not_found(format!("the page has no file {name:?}")))?;
    Ok(serve(asset, &headers))
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let etag = etag(asset);
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
    ];
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    if unchanged {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}

/// The asset's strong validator: a hash of its bytes, computed once.
fn etag(asset: &'static Asset) -> HeaderValue {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(a.bytes)))
                    .expect("hex is a valid header")
            })
            .collect()
    });
    let index = ASSETS
        .iter()
        .position(|a| std::ptr::eq(a, asset))
        .unwrap_or_default();
    tags[index].clone()
}

/// 64-bit FNV-1a: enough to tell two versions of a file apart (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::{ASSETS, find};

    fn text(name: &str) -> &'static str {
        std::str::from_utf8(find(name).expect("embedded").bytes).expect("UTF-8")
    }

    /// Every `/assets/x` the page names and every `./x.js` a module imports is embedded.
    #[test]
    fn every_file_the_page_names_is_embedded() {
        let mut named = Vec::new();
        for asset in ASSETS {
            let text = text(asset.name);
            for (start, _) in text.match_indices("/assets/") {
                let rest = &text[start + "/assets/".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                    .unwrap_or(rest.len());
                named.push(rest[..end].to_owned());
            }
            for (start, _) in text.match_indices("from \"./") {
                let rest = &text[start + "from \"./".len()..];
                named.push(rest[..rest.find('"').expect("closed")].to_owned());
            }
        }
        assert!(named.len() > 10, "{named:?}");
        for name in named {
            assert!(find(&name).is_some(), "{name} is named but not embedded");
        }
    }

    /// The CSP forbids inline scripts and handlers: the page must not need them.
    #[test]
    fn the_page_has_no_inline_script() {
        let html = text("index.html");
        for script in html.split("<script").skip(1) {
            let tag_end = script.find('>').expect("closed tag");
            assert!(script[..tag_end].contains("src="), "inline <script>");
            assert!(
                script[tag_end + 1..].starts_with("</script>"),
                "inline code"
            );
        }
        assert!(!html.contains(" onclick="), "inline handler");
        assert!(
            !html.contains("//cdn") && !html.contains("https://"),
            "another origin"
        );
    }
}
