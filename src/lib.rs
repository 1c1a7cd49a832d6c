//! FastCGI for [tower] and [axum]: mount PHP-FPM, Python WSGI applications (flup), CGI
//! scripts (fcgiwrap) or any FastCGI application beside native Rust handlers.
//!
//! [`FcgiService`] is a `tower::Service<http::Request<B>>`. It turns each request into
//! FastCGI records (BEGIN_REQUEST, PARAMS carrying a CGI/1.1 environment, STDIN), sends
//! them over a pooled keep-alive connection (TCP or Unix socket), and parses the CGI
//! response (Status, Location, headers, STDOUT) into an `http::Response<FcgiBody>` whose
//! body streams as the client reads it.
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum
//!
//! # Mounting PHP-FPM in axum
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower::ServiceBuilder;
//! use tower_fastcgi::{ConnectionInfo, FcgiService};
//! use tower_http::{compression::CompressionLayer, trace::TraceLayer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let php = FcgiService::builder()
//!     .unix("/run/php/php8.2-fpm.sock")
//!     .document_root("/var/www/html")   // SCRIPT_FILENAME = root + script path
//!     .max_connections(5)               // ≤ pm.max_children
//!     .read_timeout(Duration::from_secs(30))
//!     .build();
//!
//! let app = Router::new()
//!     .route("/", get(|| async { "native handler" }))
//!     .nest_service("/blog", php)
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(TraceLayer::new_for_http())
//!             .layer(CompressionLayer::new()),
//!     );
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // ConnectionInfo gives the backend REMOTE_ADDR, REMOTE_PORT, SERVER_ADDR and SERVER_PORT.
//! axum::serve(listener, app.into_make_service_with_connect_info::<ConnectionInfo>()).await
//! # }
//! ```
//!
//! # Two ways to name the script
//!
//! - **Application mode** (the default; flup/WSGI, Go, a single front controller): one
//!   application owns the mount point. SCRIPT_NAME is the mount prefix (axum's
//!   `nest_service` prefix, or [`Builder::script_name`]) and PATH_INFO the rest of the
//!   path, as with Apache's `ProxyPass /app fcgi://127.0.0.1:9000/`.
//!   [`Builder::script_filename`] adds a fixed SCRIPT_FILENAME.
//! - **Document-root mode** ([`Builder::document_root`]; php-fpm, fcgiwrap): the path names
//!   a script file under the root. `/index.php/extra` runs `index.php` with
//!   PATH_INFO `/extra`, but only because `index.php` exists and has an allowed extension:
//!   `/uploads/x.jpg/a.php` is a 404, never an execution of `x.jpg`. Directories use
//!   the index file (`index.php`), `/dir` redirects to `/dir/`.
//!
//! REQUEST_URI is always the original request target, also under `nest_service`.
//!
//! # Request and response bodies
//!
//! Request bodies of known length stream to STDIN while the response is read, with
//! backpressure; small ones (≤ 64 KiB) are read first so the request goes out in one
//! write. Bodies of unknown length (chunked, HTTP/2) are spooled by default so
//! CONTENT_LENGTH is exact, which php-fpm requires ([`UnknownLengthBody`]).
//! Responses stream: [`FcgiBody`] reads STDOUT only when polled.
//!
//! # Errors
//!
//! Before the response head, failures become responses: 502 (connect refused, protocol
//! error, malformed CGI head), 503 (pool queue timeout, FCGI_OVERLOADED), 504 (timeouts),
//! 400/404/411/413/431 for requests that cannot be mapped or are too large. Each is logged
//! with its reason. After the head, the body ends with an [`Error`]. See [`Error`],
//! [`Builder::on_error`] and [`FcgiService::fallible`].
//!
//! # Security defaults
//!
//! The `Proxy` header never becomes HTTP_PROXY (httpoxy); header names containing `_`
//! are dropped so `X_Forwarded_For` cannot pose as `X-Forwarded-For`; hop-by-hop headers
//! and those named in `Connection` are not forwarded; request data can never set a
//! parameter name such as PHP_VALUE or SCRIPT_FILENAME; decoded paths with NUL, control
//! characters, backslashes, encoded slashes or `..` above the root are refused; scripts
//! that are symlinks out of the root are refused; the backend's `Transfer-Encoding` is
//! dropped and its `Content-Length` is enforced against the body.
#![deny(unsafe_code)]
// No input may panic the library: no unwrap/expect/panic, no unchecked indexing outside tests.
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod proto;

mod body;
mod cgi;
mod client;
mod error;
mod pool;
pub mod service;
#[cfg(feature = "php")]
mod site;

pub use body::FcgiBody;
pub use cgi::{ConnectionInfo, RequestParams};
pub use client::upload::UnknownLengthBody;
pub use client::{Backend, ParseBackendError};
pub use error::{BoxError, Error, ErrorKind, Timeout};
pub use pool::PoolStats;
pub use service::{Builder, FcgiService};
#[cfg(feature = "php")]
pub use site::{InterceptHandler, PhpSite, PhpSiteBuilder};
