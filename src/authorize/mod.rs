//! FastCGI access control as a tower layer: the Authorizer role (FastCGI 1.0 §6.3).
//!
//! [`FcgiAuthorizerLayer`] puts a FastCGI *authorizer* in front of any service, a native
//! axum handler as well as an [`FcgiService`] or a [`PhpSite`](crate::PhpSite). For each
//! request it sends `FCGI_AUTHORIZER` with the request's CGI environment to the
//! authorizer, then:
//!
//! | the authorizer answers | the layer |
//! |---|---|
//! | `Status: 200` | calls the inner service; each `Variable-NAME: value` becomes an [`AuthorizerVariables`] entry (a request extension) and, for the crate's connectors, the CGI variable `NAME`. Nothing of the answer reaches the client; its body is read and dropped. |
//! | any other status (401, 403, 302, 500, ...) | answers with it: the authorizer's status, headers (`WWW-Authenticate`, `Location`, ...) and body. The inner service is never called. |
//! | nothing it can be sure of: unreachable, timed out, broken records, `FCGI_UNKNOWN_ROLE`, no output, a head without `Status` | fails closed: 502, 503 or 504 by cause (as [`Error::status_code`](crate::Error::status_code)), logged. Never a pass. |
//!
//! Allow decisions can be remembered for a TTL, per credential, method and target
//! ([`FcgiAuthorizerLayer::cache_allowed`]); off by default.
//!
//! The authorizer is an ordinary [`FcgiService`]: its builder's backends, fleet, pool,
//! timeouts, retry budget, error hook and statistics apply to the checks, and one service
//! value can serve as an authorizer for several layers (they share its pool).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tower_fastcgi::{AuthorizerVariables, FcgiAuthorizerLayer, FcgiService};
//!
//! let authorizer = FcgiService::builder().unix("/run/auth.sock").build();
//! let php = FcgiService::builder()
//!     .unix("/run/php/php-fpm.sock")
//!     .document_root("/var/www/html")
//!     .build();
//! let app: Router = Router::new()
//!     // php-fpm sees $_SERVER['AUTH_USER'] when the authorizer says `Variable-AUTH_USER: alice`.
//!     .nest_service("/wiki", php)
//!     .route(
//!         "/me",
//!         get(|req: axum::extract::Request| async move {
//!             let vars = req.extensions().get::<AuthorizerVariables>();
//!             vars.and_then(|v| v.get("AUTH_USER")).unwrap_or("?").to_owned()
//!         }),
//!     )
//!     .layer(FcgiAuthorizerLayer::new(authorizer));
//! ```
//!
//! # What the authorizer receives
//!
//! The request's CGI environment as a responder would get it (the same rules and the
//! same [`FcgiServiceBuilder`](crate::FcgiServiceBuilder) settings: `param`, `https`,
//! `server_name`, ...), with `REQUEST_URI` the whole original target, `FCGI_ROLE=AUTHORIZER`
//! and `HTTP_AUTHORIZATION` always (it is what is checked, whatever
//! `pass_authorization` says). As Apache and lighttpd do, no SCRIPT_NAME, PATH_INFO,
//! PATH_TRANSLATED and no CONTENT_LENGTH: the authorizer does not get the body, and no
//! STDIN record at all (Apache's framing and tokio-fastcgi's expectation; lighttpd sends
//! the empty terminator, which a kept-alive libfcgi, tokio-fastcgi or php-fpm connection
//! takes as a protocol error after the answer). The
//! service's fixed `script_filename` and `application_document_root` are sent as
//! SCRIPT_FILENAME and DOCUMENT_ROOT, which is how php-fpm finds an authorizer script.
//!
//! # Which variables pass
//!
//! Names are kept as the authorizer wrote them (`http` lowercases header names; the
//! layer reads the raw head), with `-` mapped to `_` as lighttpd does. A name that is not
//! a CGI name is dropped, and so is one the gateway computes itself or that configures
//! the backend, whatever its case: `HTTP_*`, `SERVER_*`, `REQUEST_*`, `SCRIPT_*`,
//! `DOCUMENT_*`, `FCGI_*`, `PHP_*`, GATEWAY_INTERFACE, HTTPS, QUERY_STRING, PATH_INFO,
//! PATH_TRANSLATED, REMOTE_ADDR, REMOTE_PORT, REMOTE_HOST, CONTENT_LENGTH, CONTENT_TYPE,
//! REDIRECT_STATUS, REDIRECT_URL. `REMOTE_USER`, `AUTH_TYPE` and any name of the
//! application's own pass. A [`RequestParams`](crate::RequestParams) entry the
//! application set before the layer, and the service's configured `param`s, keep their
//! values over a variable of the same name.
//!
//! # Compared with Apache and lighttpd
//!
//! Measured against lighttpd 1.4.69 (`"mode" => "authorizer"`, mod_cgi behind) with the
//! Perl FCGI authorizer of the tests; Apache from mod_authnz_fcgi's source and manual.
//!
//! | | lighttpd 1.4.69 | Apache 2.4 mod_authnz_fcgi | this layer |
//! |---|---|---|---|
//! | head without `Status`, or no output at all | allowed (200) | allowed (no Status is 200) | 502 |
//! | `Variable-X-Team: ops` | `X_TEAM` (uppercased) | `X-Team` (prefix stripped) | `X_Team` (case kept, `-` → `_`) |
//! | `Variable-SCRIPT_FILENAME: /etc/passwd` | replaces SCRIPT_FILENAME | set in the subprocess env | dropped, with a warning |
//! | `Variable-*` on a refusal | sent to the client | not sent | not sent |
//! | refusal body and headers | to the client | to the client only when `Authoritative` | to the client |
//! | STDIN | empty terminator | none | none |
//! | authorizer connections | one per check | one per check, TCP only | pooled keep-alive, TCP or Unix |
//! | 1xx from the authorizer | relayed | - | 502 |
//! | after a 200 | restarts request handling (the authorizer's `docroot` may serve files) | next phase | calls the inner service |
//!
//! The authorizer sees the same environment from lighttpd and from this layer (no
//! CONTENT_LENGTH, SCRIPT_NAME or PATH_INFO; `HTTP_AUTHORIZATION`; the whole
//! REQUEST_URI). A single-process authorizer (a Perl FCGI script without a process
//! manager) serves one connection at a time and keeps serving a kept-alive one: give its
//! service [`max_connections(1)`](crate::FcgiServiceBuilder::max_connections).

mod body;
mod cache;
mod check;
mod variables;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use body::AuthorizerBody;
pub use variables::AuthorizerVariables;

use crate::FcgiService;
use crate::service::Inner;
use cache::AllowCache;
use check::Verdict;

/// A layer that asks a FastCGI authorizer about every request before the service behind
/// it runs; see the [module docs](crate::authorize) for the semantics.
///
/// Built from the [`FcgiService`] that talks to the authorizer, so the checks share its
/// backends, pool, fleet, timeouts and error hook.
#[derive(Clone)]
pub struct FcgiAuthorizerLayer {
    authorizer: FcgiService,
    /// Shared by every service this layer makes.
    cache: Option<Arc<AllowCache>>,
    capacity: usize,
}

impl FcgiAuthorizerLayer {
    /// A layer whose checks go to `authorizer` (with the Authorizer role, whatever the
    /// service is otherwise used for).
    pub fn new(authorizer: FcgiService) -> FcgiAuthorizerLayer {
        FcgiAuthorizerLayer {
            authorizer,
            cache: None,
            capacity: crate::defaults::AUTHORIZER_CACHE_CAPACITY,
        }
    }

    /// Remembers each allow decision for `ttl`, keyed by the value of the request header
    /// `header` (usually `Authorization`, or the session cookie) together with the method
    /// and the whole request target, since an authorizer may decide by path. Off by
    /// default: every request is checked.
    ///
    /// Only allows are remembered (with their variables), never refusals or failures, so
    /// a revoked credential still passes for at most `ttl` on a target it already passed
    /// on. Requests without `header` are always checked. The services made by one layer
    /// share one cache of at most [`cache_capacity`](Self::cache_capacity) entries.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_fastcgi::{FcgiAuthorizerLayer, FcgiService};
    ///
    /// let layer = FcgiAuthorizerLayer::new(FcgiService::tcp("127.0.0.1:9600"))
    ///     .cache_allowed(http::header::AUTHORIZATION, Duration::from_secs(30));
    /// # let _ = layer;
    /// ```
    pub fn cache_allowed(mut self, header: HeaderName, ttl: Duration) -> FcgiAuthorizerLayer {
        self.cache = Some(Arc::new(AllowCache::new(header, ttl, self.capacity)));
        self
    }

    /// Most allow decisions remembered at once (default
    /// [`AUTHORIZER_CACHE_CAPACITY`](crate::defaults::AUTHORIZER_CACHE_CAPACITY)); a full
    /// cache first drops expired entries, then stops remembering until some expire.
    pub fn cache_capacity(mut self, entries: usize) -> FcgiAuthorizerLayer {
        self.capacity = entries;
        if let Some(cache) = &self.cache {
            self.cache = Some(Arc::new(cache.with_capacity(entries)));
        }
        self
    }
}

impl<S> Layer<S> for FcgiAuthorizerLayer {
    type Service = FcgiAuthorizer<S>;

    fn layer(&self, inner: S) -> FcgiAuthorizer<S> {
        FcgiAuthorizer {
            inner,
            authorizer: Arc::clone(self.authorizer.shared()),
            cache: self.cache.clone(),
        }
    }
}

/// A service behind a FastCGI authorizer; made by [`FcgiAuthorizerLayer`].
#[derive(Clone)]
pub struct FcgiAuthorizer<S> {
    inner: S,
    authorizer: Arc<Inner>,
    cache: Option<Arc<AllowCache>>,
}

impl<S> FcgiAuthorizer<S> {
    /// `inner` behind the authorizer that `authorizer` talks to.
    pub fn new(inner: S, authorizer: &FcgiService) -> FcgiAuthorizer<S> {
        FcgiAuthorizerLayer::new(authorizer.clone()).layer(inner)
    }

    /// The service behind the authorizer.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FcgiAuthorizer<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<AuthorizerBody<ResBody>>;
    type Error = S::Error;
    type Future = AuthorizerFuture<ResBody, S::Error>;

    /// Ready when the inner service is: the check itself queues per request in the
    /// authorizer's pool, like every [`FcgiService`] request.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone that was made ready goes into the future; a fresh clone stays
        // (tower's usual pattern for a call that awaits before the inner call).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let authorizer = Arc::clone(&self.authorizer);
        let cache = self.cache.clone();
        AuthorizerFuture {
            inner: Box::pin(async move {
                let (mut parts, body) = req.into_parts();
                let cached = cache.as_ref().and_then(|c| Some((c, c.key(&parts)?)));
                let remembered = cached.as_ref().and_then(|(c, key)| c.get(key));
                let verdict = match remembered {
                    Some(vars) => Verdict::Allow(vars),
                    None => {
                        let verdict = check::authorize(&authorizer, &parts).await;
                        if let (Verdict::Allow(vars), Some((c, key))) = (&verdict, cached) {
                            c.put(key, vars);
                        }
                        verdict
                    }
                };
                match verdict {
                    Verdict::Allow(vars) => {
                        vars.apply(&mut parts.extensions);
                        let res = inner.call(Request::from_parts(parts, body)).await?;
                        Ok(res.map(AuthorizerBody::inner))
                    }
                    Verdict::Respond(res) => Ok(res.map(AuthorizerBody::authorizer)),
                }
            }),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The future of [`FcgiAuthorizer`]'s `Service::call`.
pub struct AuthorizerFuture<B, E> {
    inner: BoxFuture<Result<Response<AuthorizerBody<B>>, E>>,
}

impl<B, E> Future for AuthorizerFuture<B, E> {
    type Output = Result<Response<AuthorizerBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for AuthorizerFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizerFuture").finish_non_exhaustive()
    }
}

impl fmt::Debug for FcgiAuthorizerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcgiAuthorizerLayer")
            .field("authorizer", &self.authorizer)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl<S: fmt::Debug> fmt::Debug for FcgiAuthorizer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcgiAuthorizer")
            .field("inner", &self.inner)
            .field("authorizer", &format_args!("{}", self.authorizer.fleet))
            .finish()
    }
}
