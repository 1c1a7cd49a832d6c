//! The gateway's `--auth PREFIX=BACKEND[,OPTS]`: a FastCGI authorizer
//! ([`FcgiAuthorizerLayer`](tower_fastcgi::FcgiAuthorizerLayer)) in front of every request
//! whose path is under PREFIX, whichever mount serves it (a `/` mount's `/private/x`
//! included). Shared with the tests.
//!
//! The prefix is matched on the percent-decoded path with `.`, `..` and empty segments
//! resolved, and on the raw path too: `/%70rivate/x` and `/public/../private/x` are under
//! `/private`. A path that cannot be decoded is guarded (fail closed): the mounts refuse
//! it with a 400 anyway, but only after the authorizer said yes.
//!
//! Included with `#[path = ".../examples/support/gateway_auth.rs"] mod gateway_auth;`.
#![allow(dead_code)]

use std::borrow::Cow;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};
use tower_fastcgi::{FcgiAuthorizer, FcgiService};

/// One `--auth` option: the prefix it guards and the authorizer it asks.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Without a trailing slash; `""` guards everything.
    pub prefix: String,
    pub authorizer: FcgiService,
}

/// Puts every guard in front of `app` (the first given is asked first), erased to one
/// type: the gateway's mount table, or any other service.
pub fn guard<S>(
    app: S,
    guards: &[Guard],
) -> BoxCloneSyncService<Request, Response, std::convert::Infallible>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let mut app = BoxCloneSyncService::new(app);
    for g in guards.iter().rev() {
        let g = g.clone();
        let layer =
            middleware::from_fn(move |req: Request, next: Next| check(g.clone(), req, next));
        app = BoxCloneSyncService::new(layer.layer(app));
    }
    app
}

/// Asks `g`'s authorizer about `req` when `g` covers it, then serves it (or not).
async fn check(g: Guard, req: Request, next: Next) -> Response {
    if !g.covers(req.uri().path()) {
        return next.run(req).await;
    }
    match FcgiAuthorizer::new(next, &g.authorizer).oneshot(req).await {
        Ok(res) => res.into_response(),
        Err(never) => match never {},
    }
}

impl Guard {
    /// Whether the authorizer must be asked about a request for `raw_path`.
    pub fn covers(&self, raw_path: &str) -> bool {
        if under(&self.prefix, raw_path) {
            return true;
        }
        match normalize(raw_path) {
            Some(path) => under(&self.prefix, &path),
            None => true,
        }
    }
}

/// `/private` covers `/private` and `/private/...`, not `/privateer`.
fn under(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The decoded path with `.`, `..` and empty segments resolved; `None` if it is not
/// UTF-8 after decoding.
fn normalize(raw: &str) -> Option<String> {
    let decoded: Cow<'_, str> = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    Some(format!("/{}", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(prefix: &str, path: &str) -> bool {
        Guard {
            prefix: prefix.into(),
            authorizer: FcgiService::tcp("127.0.0.1:9"),
        }
        .covers(path)
    }

    #[test]
    fn prefixes_match_whole_segments_after_decoding() {
        assert!(covers("/private", "/private"));
        assert!(covers("/private", "/private/a.php"));
        assert!(!covers("/private", "/privateer"));
        assert!(!covers("/private", "/public/x"));
        assert!(covers("/private", "/%70rivate/x"));
        assert!(covers("/private", "/public/../private/x"));
        assert!(covers("/private", "//private/x"));
        assert!(covers("/private", "/./private"));
        assert!(
            covers("/private", "/%ff/x"),
            "undecodable paths are guarded"
        );
        assert!(covers("", "/anything"));
    }
}
