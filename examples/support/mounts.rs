//! The gateway's mount table: each request goes to the mount with the longest prefix that
//! covers its path, with the prefix stripped exactly as axum's `nest_service` strips it
//! (so every mount sees what it would see nested in an axum `Router`).
//!
//! Why not an axum `Router`: a router is built for many routes with parameters. A gateway
//! has a handful of literal prefixes, and the router's generality (path matching with
//! parameter capture, the URL-params extension, the rebuilt URI, a cloned boxed service
//! and two more futures per request) cost about 7,000 instructions per request, a sixth
//! of a tiny GET's total (callgrind, `bench/profile_tiny.sh`). Here a request costs a
//! prefix comparison per mount, one allocation for the stripped path and the boxed
//! future of the mount it goes to.
//!
//! Included with `#[path = ".../examples/support/mounts.rs"] mod mounts;`, beside
//! `serve.rs` (whose [`Handler`] it implements) and `mount.rs` (whose [`Attach`] it
//! implements).
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::uri::{PathAndQuery, Uri};
use tower::ServiceExt;

use crate::mount::Attach;
use crate::serve::Handler;

type BoxFuture = Pin<Box<dyn Future<Output = Response> + Send>>;
type Erased = Arc<dyn Fn(Request) -> BoxFuture + Send + Sync>;

/// The mounts, longest prefix first, and the `""` mount (everything else), if any.
#[derive(Clone, Default)]
pub struct Mounts {
    prefixed: Arc<Vec<(String, Erased)>>,
    fallback: Option<Erased>,
}

impl Mounts {
    pub fn new() -> Mounts {
        Mounts::default()
    }

    /// The mount a request for `path` goes to, and how many bytes of prefix it strips.
    fn route(&self, path: &str) -> Option<(&Erased, usize)> {
        for (prefix, svc) in self.prefixed.iter() {
            if let Some(rest) = path.strip_prefix(prefix.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return Some((svc, prefix.len()));
            }
        }
        self.fallback.as_ref().map(|svc| (svc, 0))
    }
}

impl Attach for Mounts {
    /// `prefix` comes from `parse_mount`: `""` or `/...` without a trailing slash. A
    /// second mount at the same prefix replaces the first (axum would panic; the
    /// gateway's flags never produce one because `parse_mount` is per flag, but the
    /// table stays well-defined).
    fn attach<S>(mut self, prefix: &str, svc: S) -> Mounts
    where
        S: tower::Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        let erased: Erased = Arc::new(move |req| {
            let call = svc.clone().oneshot(req);
            Box::pin(async move {
                match call.await {
                    Ok(res) => res.into_response(),
                    Err(never) => match never {},
                }
            })
        });
        if prefix.is_empty() {
            self.fallback = Some(erased);
            return self;
        }
        let mut prefixed = Vec::clone(&self.prefixed);
        prefixed.retain(|(p, _)| p != prefix);
        prefixed.push((prefix.to_owned(), erased));
        // Longest first, so `/a/b` wins over `/a` for `/a/b/c`.
        prefixed.sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.prefixed = Arc::new(prefixed);
        self
    }
}

/// The table as a tower service, for layers.
impl tower::Service<Request> for Mounts {
    type Response = Response;
    type Error = Infallible;
    type Future = OkFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> OkFuture {
        OkFuture(self.handle(req))
    }
}

/// A mount's response as the `Ok` of a tower service's future.
pub struct OkFuture(BoxFuture);

impl Future for OkFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}

impl Handler for Mounts {
    fn handle(&self, mut req: Request) -> BoxFuture {
        let Some((svc, strip)) = self.route(req.uri().path()) else {
            // axum's default fallback: an empty 404.
            return Box::pin(std::future::ready(StatusCode::NOT_FOUND.into_response()));
        };
        if strip > 0 {
            match stripped(req.uri(), strip) {
                Some(uri) => {
                    let original = std::mem::replace(req.uri_mut(), uri);
                    // An outer router's OriginalUri stays (as with nested axum routers).
                    if req.extensions().get::<OriginalUri>().is_none() {
                        req.extensions_mut().insert(OriginalUri(original));
                    }
                }
                // Cannot happen (a tail of a valid path is a valid path), but if it did the
                // request is refused rather than served unstripped.
                None => {
                    return Box::pin(std::future::ready(StatusCode::BAD_REQUEST.into_response()));
                }
            }
        }
        svc(req)
    }
}

/// `uri` without its first `strip` path bytes (a whole prefix, so the rest is empty or
/// starts with `/`), as axum's `nest_service` strips: the prefix and the `/` after it go,
/// then a `/` is put back unless the rest already starts with one (so `/p` and `/p/` become
/// `/`, `/p/x` becomes `/x` and `/p//x` becomes `/x`, as under axum); the query is kept.
fn stripped(uri: &Uri, strip: usize) -> Option<Uri> {
    let rest = uri.path().get(strip..)?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let slash = !rest.starts_with('/');
    let query = uri.query();
    let len = usize::from(slash) + rest.len() + query.map_or(0, |q| q.len() + 1);
    // Exactly `len` bytes of capacity: `Bytes::from` then takes the allocation as is.
    let mut text = Vec::with_capacity(len);
    if slash {
        text.push(b'/');
    }
    text.extend_from_slice(rest.as_bytes());
    if let Some(q) = query {
        text.push(b'?');
        text.extend_from_slice(q.as_bytes());
    }
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(text)).ok()?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(uri: &str, n: usize) -> String {
        stripped(&uri.parse().unwrap(), n).unwrap().to_string()
    }

    #[test]
    fn strips_like_nest_service() {
        assert_eq!(strip("/r", 2), "/");
        assert_eq!(strip("/r/", 2), "/");
        assert_eq!(strip("/r/x/y?a=1&b", 2), "/x/y?a=1&b");
        assert_eq!(strip("/r?q", 2), "/?q");
        assert_eq!(strip("/r//x", 2), "/x");
        assert_eq!(strip("/r///x", 2), "//x");
        assert_eq!(strip("http://h:8/r/x?q", 2), "http://h:8/x?q");
    }
}
