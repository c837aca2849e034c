//! The operator's console at `/admin`: a page of plain HTML, CSS and JavaScript modules
//! embedded in the binary (`assets/`), and the JSON calls it makes (`api`), behind a login
//! with a key's REST token or the configured admin password (`session`). Every answer carries
//! a strict Content-Security-Policy and the headers that keep the console out of frames.
//!
//! Knows no hyper types: `http` hands over the request's head and a body reader, and sends
//! back the [`Page`].

mod api;
mod assets;
mod session;
mod stats;

use std::net::IpAddr;

use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;
use crate::request::{self, BodyError, BodyReader, Early, Head, Refused, Reply};
use crate::state::AppState;
use crate::verify::Headers;

pub(crate) use session::Sessions;

/// Largest body a console call may send (a login, a key name, a recovery time).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Scripts, styles and calls only from this origin; no inline script or style, no frames, no
/// plugins, no `<base>` rewriting, forms only to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
];

struct AdminRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a (dyn Headers + Sync),
    pub peer: IpAddr,
    pub body: Bytes,
}

/// An answer: status, headers (content type included) and body.
pub(crate) struct Page {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// Set when the answer was given before the body was read whole.
    pub early: Option<Early>,
}

impl Page {
    fn new(status: u16, content_type: &str, cache: &str, body: Bytes) -> Page {
        Page {
            status,
            headers: vec![
                ("content-type", content_type.to_string()),
                ("cache-control", cache.to_string()),
            ],
            body,
            early: None,
        }
    }

    /// JSON that no cache keeps (it may name keys and secrets).
    fn json(status: u16, body: &Value) -> Page {
        let bytes = serde_json::to_vec(body).expect("JSON values serialize");
        Page::new(status, "application/json", "no-store", Bytes::from(bytes))
    }

    fn error(e: &ApiError) -> Page {
        Page::json(e.status, &e.body())
    }
}

/// Reads the call's body (a console call's sender is known only from it or its cookie, so it
/// is read first, within [`MAX_BODY_BYTES`] and the same deadlines), then answers it.
pub(crate) async fn serve<H: Headers + Sync>(
    state: &AppState,
    head: &Head<'_, H>,
    body: &mut impl BodyReader,
) -> Page {
    let bytes = match request::admit(body, MAX_BODY_BYTES, async { Ok(()) }).await {
        Ok(((), bytes)) => bytes,
        Err(Refused::Body(BodyError::TooLarge)) => {
            let mut page = body_too_large();
            page.early = Some(Early {
                drain: true,
                retry_after: None,
            });
            return page;
        }
        Err(refused) => {
            let reply = refused.answer(&state.config, |e| Reply::error(&e));
            let mut page = Page::json(reply.status, &Value::Null);
            page.body = reply.body;
            page.early = reply.early;
            return page;
        }
    };
    let request = AdminRequest {
        method: head.method,
        path: head.path,
        query: head.query,
        headers: head.headers,
        peer: head.client,
        body: bytes,
    };
    handle(state, request).await
}

async fn handle(state: &AppState, req: AdminRequest<'_>) -> Page {
    let page = match (req.method, req.path) {
        (_, p) if p.starts_with("/admin/api/") => api::handle(state, &req).await,
        ("GET", "/admin") => {
            let mut page = Page::new(308, "text/plain", "no-cache", Bytes::new());
            page.headers.push(("location", "/admin/".to_string()));
            page
        }
        ("GET", p) => match assets::find(p) {
            Some(asset) => Page::new(200, asset.content_type, "no-cache", asset.body()),
            None => Page::error(&ApiError::new(
                404,
                "route_not_found",
                format!("no console page {p}"),
            )),
        },
        _ => Page::error(&ApiError::new(
            405,
            "method_not_allowed",
            "the console's pages only answer GET",
        )),
    };
    secured(page)
}

/// The answer to a console call whose body is over [`MAX_BODY_BYTES`].
fn body_too_large() -> Page {
    secured(Page::error(&ApiError::new(
        413,
        "payload_too_large",
        format!("console calls carry at most {MAX_BODY_BYTES} bytes"),
    )))
}

fn secured(mut page: Page) -> Page {
    page.headers.extend(
        SECURITY_HEADERS
            .iter()
            .map(|&(name, value)| (name, value.to_string())),
    );
    page
}
