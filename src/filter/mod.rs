//! The FastCGI Filter role (FastCGI 1.0 §6.4): files under a document root served through
//! a FastCGI application that transforms them.
//!
//! [`FcgiFilter`] serves `GET /docs/report.md` by resolving `/docs/report.md` under the
//! document root of its [`FcgiService`] (the same path rules, symlink policy and refusals
//! as the service's own scripts), then sending the application `FCGI_FILTER` with:
//!
//! - PARAMS: the request's CGI environment, with SCRIPT_NAME the file's URL path,
//!   SCRIPT_FILENAME the file, FCGI_ROLE=FILTER, FCGI_DATA_LENGTH (its size in bytes)
//!   and FCGI_DATA_LAST_MOD (its modification time in seconds since the Unix epoch);
//! - STDIN: the request body, as for a responder;
//! - DATA, after the whole of STDIN: the file's bytes, read 64 KiB at a time and only as
//!   fast as the application takes them (the bounded memory of STDIN), then the empty
//!   DATA record.
//!
//! The application's output is the response, streamed back as an [`FcgiService`]'s is,
//! with the same error mapping, error hook and logging. Scripts (the service's script
//! extensions; so not with `any_file_is_a_script`) and dotfiles (any segment starting
//! with `.`) are never sent as data: they are 404, as are paths with no regular file; a
//! directory without its trailing slash is a 308, as in [`FcgiService`].
//!
//! No mainstream server implements this role as a client (nginx, Apache, lighttpd,
//! HAProxy and Caddy do not); gofast does, with the same two variables. Applications:
//! flup receives FCGI_DATA but does not pass it to WSGI applications (a filter needs its
//! lower-level `handler`); tokio-fastcgi holds the whole data stream in memory before it
//! calls the application; php-fpm accepts the role but ignores FCGI_DATA.
//!
//! ```no_run
//! use axum::Router;
//! use tower_fastcgi::{FcgiFilter, FcgiService};
//!
//! let markdown = FcgiService::builder()
//!     .unix("/run/markdown-filter.sock")
//!     .document_root("/srv/docs")
//!     .build();
//! let app: Router = Router::new()
//!     .nest_service("/docs", FcgiFilter::new(markdown).expect("a document root"));
//! ```

mod serve;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::FcgiBody;
use crate::cgi::ScriptMode;
use crate::error::BoxError;
use crate::service::respond::respond;
use crate::{BuildError, FcgiService, ResponseFuture};

/// A service that sends the files under a document root through a FastCGI *filter*
/// application; see the [module docs](crate::filter).
///
/// Built from the [`FcgiService`] that talks to the application, in document-root mode:
/// its root, path rules, pool, fleet, timeouts and error hook apply.
#[derive(Clone)]
pub struct FcgiFilter {
    service: FcgiService,
}

impl FcgiFilter {
    /// A filter for the files under `service`'s document root.
    ///
    /// An error when the service has no [`document_root`](crate::FcgiServiceBuilder::document_root):
    /// a filter needs files to filter.
    pub fn new(service: FcgiService) -> Result<FcgiFilter, BuildError> {
        match service.shared().cgi.mode {
            ScriptMode::DocumentRoot(_) => Ok(FcgiFilter { service }),
            ScriptMode::Application { .. } => Err(BuildError::new(
                "a filter needs a service with a document_root (the files it filters)",
            )),
        }
    }
}

impl<B> Service<Request<B>> for FcgiFilter
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<FcgiBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready, as [`FcgiService`]: requests queue in the pool.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let inner = Arc::clone(self.service.shared());
        ResponseFuture::new(async move {
            let (parts, body) = req.into_parts();
            let result = serve::serve(&inner, &parts, body).await;
            Ok(respond(&inner, &parts, result).await)
        })
    }
}

impl fmt::Debug for FcgiFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcgiFilter")
            .field("service", &self.service)
            .finish()
    }
}
