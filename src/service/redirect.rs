//! Routing and RFC 3875 local redirects, in one loop for `FcgiService` and `PhpSite`.
//!
//! Like tower-http's `follow_redirect` with its `Policy`, the loop owns the hops and asks
//! a [`Router`] where each one goes: the request itself first, then every `Location:
//! /path` (without `Status`) the backend answers with. So a redirected path passes the
//! same rules as a request for it (PhpSite's deny list, dotfiles, static files, front
//! controller); `Location: /conf/local.php` cannot run a denied script.

use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;

use http::request::Parts;
use http::{Method, Response};
use http_body::Body;
use tokio::time::Instant;

use super::{Inner, run};
use crate::body::FcgiBody;
use crate::cgi::env::Script;
use crate::cgi::head::ResponseHead;
use crate::cgi::{self, CgiConfig, Mount, Route};
use crate::client::upload::{self, Upload};
use crate::error::{BoxError, Error, ErrorKind};

/// Most internal re-dispatches of one request for RFC 3875 local redirects (lighttpd
/// uses the same limit).
pub(crate) const MAX_LOCAL_REDIRECTS: usize = 5;

/// Decides where a request (or a local redirect's target) goes, and finishes what only
/// the router knows how to: files and rewriting a script's response.
pub(crate) trait Router: Send + Sync {
    /// The route for one hop. `Err` only for requests that cannot be mapped at all.
    fn route<'a>(&'a self, cfg: &'a CgiConfig, parts: &'a Parts) -> Result<Route<'a>, Error>;

    /// Serves a file [`route`](Router::route) chose.
    fn serve_file(
        &self,
        parts: &Parts,
        file: PathBuf,
    ) -> impl Future<Output = Response<FcgiBody>> + Send;

    /// The final script response, rewritten if the router wants (X-Sendfile).
    fn finish_script(
        &self,
        _parts: &Parts,
        res: Response<FcgiBody>,
    ) -> impl Future<Output = Result<Response<FcgiBody>, Error>> + Send {
        async move { Ok(res) }
    }
}

/// How one hop reaches a backend: FastCGI on a pooled connection (`run::FastCgi`), or
/// a connector protocol on a connection of its own (`crate::connector`). Everything
/// around it (routing, bodies read ahead or spooled, local redirects, HEAD, the error
/// mapping) is the same loop.
pub(crate) trait Transport: Sync {
    /// What the response body reads from once the head is parsed.
    type Exchange: Send;

    /// Sends the hop's request and reads its response head.
    #[allow(clippy::too_many_arguments)]
    fn exchange_head<'a>(
        &'a self,
        inner: &'a Inner,
        parts: &'a Parts,
        mount: Mount<'a>,
        target: &'a Script<'a>,
        upload: Upload,
        content_length: Option<u64>,
        started: Instant,
    ) -> impl Future<Output = Result<(Self::Exchange, ResponseHead, Bytes), Error>> + Send + 'a;

    /// Ends an exchange whose body nobody will read (a local redirect, HEAD, 204, 304).
    fn discard(
        &self,
        inner: &Inner,
        exchange: Self::Exchange,
        already: usize,
    ) -> impl Future<Output = ()> + Send;

    /// The response body: `rest` (read with the head), then the exchange's.
    fn body(&self, exchange: Self::Exchange, rest: Bytes, content_length: Option<u64>) -> FcgiBody;
}

/// How a request ended, before the error hook and the default responses turn it into
/// the response sent.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The backend's response (after local redirects and the router's rewrite).
    Backend(Response<FcgiBody>),
    /// A response the router made itself (a static file).
    Served(Response<FcgiBody>),
    /// A 308 to this location (a directory without its trailing slash).
    Redirect(String),
    /// Nothing to serve (404), with the reason for the log.
    NotFound(&'static str),
}

/// `FcgiService`'s own routing: the configured script mode, files are not served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceRoutes;

impl Router for ServiceRoutes {
    fn route<'a>(&'a self, cfg: &'a CgiConfig, parts: &'a Parts) -> Result<Route<'a>, Error> {
        Ok(match cgi::route(cfg, Mount::of(parts))? {
            Route::File(file) => {
                tracing::debug!(file = %file.display(), "not a script under the document root");
                Route::NotFound("not a script under the document root")
            }
            other => other,
        })
    }

    async fn serve_file(&self, _parts: &Parts, _file: PathBuf) -> Response<FcgiBody> {
        // `route` never returns a file; should that change, refusing is the safe answer.
        super::respond::plain(http::StatusCode::NOT_FOUND)
    }
}

/// Routes `parts` and follows local redirects until a hop ends in something to send.
pub(crate) async fn follow<R, B>(
    inner: &Inner,
    router: &R,
    parts: &Parts,
    body: B,
) -> Result<Outcome, Error>
where
    R: Router,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    follow_via(inner, &run::FastCgi, router, parts, body).await
}

/// [`follow`] over another [`Transport`].
pub(crate) async fn follow_via<T, R, B>(
    inner: &Inner,
    transport: &T,
    router: &R,
    parts: &Parts,
    body: B,
) -> Result<Outcome, Error>
where
    T: Transport,
    R: Router,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let mut body = Some(body);
    let mut redirected: Option<Parts> = None;
    let mut hops = 0;
    loop {
        let hop = redirected.as_ref().unwrap_or(parts);
        let script = match router.route(&inner.cgi, hop)? {
            Route::Script(script) => script,
            Route::File(file) => return Ok(Outcome::Served(router.serve_file(hop, file).await)),
            Route::Redirect(location) => return Ok(Outcome::Redirect(location)),
            Route::NotFound(reason) => return Ok(Outcome::NotFound(reason)),
        };
        // Read small or unknown-length bodies before taking a backend worker: a slow
        // client then costs us memory or disk, not a php-fpm child. A redirected hop is
        // a GET without a body.
        let (upload, content_length) = match body.take() {
            Some(body) => upload::prepare(body, declares_body(hop), &inner.body).await?,
            None => (Upload::Empty, None),
        };
        let mount = Mount::of(hop);
        let (exchange, mut head, rest) = transport
            .exchange_head(inner, hop, mount, &script, upload, content_length, started)
            .await?;
        drop(script);

        // RFC 3875 §6.2.2: `Location: /path` without a Status asks the server to serve
        // that path instead, as a GET without a body.
        if head.local_redirect && inner.local_redirects {
            // Outside this service's mount: pass the 302 on.
            if let Some(next) = redirected_request(hop, mount, &head) {
                hops += 1;
                if hops > MAX_LOCAL_REDIRECTS {
                    return Err(Error::msg(
                        ErrorKind::InvalidResponseHead,
                        format!("more than {MAX_LOCAL_REDIRECTS} local redirects"),
                    ));
                }
                transport.discard(inner, exchange, rest.len()).await;
                redirected = Some(next);
                continue;
            }
        }
        let reason = head.reason.take();
        // The client's method decides whether a body goes out (HEAD), not the GET of a
        // redirected hop.
        let mut res =
            run::build_response(inner, transport, &parts.method, exchange, head, rest).await?;
        if let Some(reason) = reason {
            set_reason_phrase(&mut res, reason);
        }
        return router.finish_script(hop, res).await.map(Outcome::Backend);
    }
}

/// `Status: 299 Custom`: hyper's HTTP/1 server writes the phrase from this extension
/// (HTTP/2 has no reason phrases).
fn set_reason_phrase(res: &mut Response<FcgiBody>, reason: bytes::Bytes) {
    match hyper::ext::ReasonPhrase::try_from(reason) {
        Ok(phrase) => {
            res.extensions_mut().insert(phrase);
        }
        Err(err) => tracing::debug!(error = %err, "dropping the backend's reason phrase"),
    }
}

/// The request a local redirect asks for: GET of the new path (below this service's
/// mount), same headers minus the body's, no body.
fn redirected_request(parts: &Parts, mount: Mount<'_>, head: &ResponseHead) -> Option<Parts> {
    let location = head.headers.get(http::header::LOCATION)?.to_str().ok()?;
    let below_mount = if mount.prefix.is_empty() {
        location
    } else {
        let rest = location.strip_prefix(mount.prefix)?;
        if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
            return None;
        }
        rest
    };
    let inner_uri = if below_mount.is_empty() || below_mount.starts_with('?') {
        format!("/{below_mount}")
    } else {
        below_mount.to_owned()
    };
    let mut req = http::Request::new(());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = inner_uri.parse().ok()?;
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    for name in [
        http::header::CONTENT_LENGTH,
        http::header::CONTENT_TYPE,
        http::header::TRANSFER_ENCODING,
    ] {
        req.headers_mut().remove(name);
    }
    *req.extensions_mut() = parts.extensions.clone();
    #[cfg(feature = "axum")]
    req.extensions_mut()
        .insert(axum::extract::OriginalUri(location.parse().ok()?));
    let mut extra = parts
        .extensions
        .get::<crate::RequestParams>()
        .cloned()
        .unwrap_or_default();
    extra.insert(
        "REDIRECT_URL",
        mount.request_uri.split('?').next().unwrap_or(""),
    );
    req.extensions_mut().insert(extra);
    Some(req.into_parts().0)
}

/// Whether a request with this method and these headers carries a body even when its
/// length is zero (an explicit `Content-Length: 0` POST still has a 0-byte body).
fn declares_body(parts: &Parts) -> bool {
    parts.headers.contains_key(http::header::CONTENT_LENGTH)
        || parts.headers.contains_key(http::header::TRANSFER_ENCODING)
        || matches!(parts.method, Method::POST | Method::PUT | Method::PATCH)
}
