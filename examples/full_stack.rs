//! A whole middleware stack around FastCGI mounts: a flup/WSGI app at `/fcgi-test`, a PHP
//! site at `/blog`, a native handler at `/`, wrapped in TraceLayer, CompressionLayer, a
//! custom error page (`from_fn`), TimeoutLayer, ConcurrencyLimit and RequestBodyLimitLayer.
//!
//! ```text
//! cargo run --example full_stack -- [LISTEN] [FLUP_ADDR] [PHP_FPM_SOCKET] [BLOG_ROOT]
//! curl -i http://127.0.0.1:3000/fcgi-test/   # 502 error page until a backend runs
//! ```
//!
//! It runs without any backend: requests to the mounts then get the error page (502).

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower_fastcgi::{ConnectionInfo, FcgiService, PhpSite};
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Replaces the body of server errors (the crate's 502/503/504 and the backends' 5xx)
/// with a page of our own, keeping the status and headers such as `Retry-After`.
async fn error_page(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    if !res.status().is_server_error() {
        return res;
    }
    let status = res.status();
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let page = Html(format!(
        "<h1>{} {}</h1><p>{path} is not available right now.</p>",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    ));
    let mut page = page.into_response();
    parts.headers.remove(http::header::CONTENT_TYPE);
    page.headers_mut().extend(parts.headers);
    *page.status_mut() = status;
    page
}

fn app(flup: &str, php_fpm: &str, blog_root: &str) -> Router {
    // Application mode: SCRIPT_NAME = /fcgi-test (the nest prefix), PATH_INFO = the rest.
    let wsgi = FcgiService::builder()
        .tcp(flup)
        .connect_timeout(Duration::from_secs(2))
        .build();
    // Under `nest_service("/blog", ..)` axum hands the site `/` for both `/blog` and
    // `/blog/`, so both serve the index; `/blog/sub` redirects to `/blog/sub/` (the
    // Location keeps the prefix), and REQUEST_URI is always the full original path.
    let blog = PhpSite::builder().unix(php_fpm).root(blog_root).build();

    // Order, outermost first. Each layer sees what the ones below it produce:
    // - TraceLayer first, so its spans and status lines cover everything, the error page
    //   and the timeout's 408 included;
    // - CompressionLayer next, so the error page is compressed too;
    // - `from_fn` must sit outside RequestBodyLimitLayer: `Next` takes a
    //   `Request<axum::body::Body>`, and below the limit the body is a `Limited<Body>`
    //   (the other order does not compile). Outside the timeout, it also sees the 408s;
    // - TimeoutLayer (tower-http's, which answers 408 instead of failing with an error,
    //   as axum requires of services) outside ConcurrencyLimit, so time spent waiting for
    //   a permit counts against the deadline;
    // - RequestBodyLimitLayer innermost, right above the services: a chunked body over
    //   the limit then fails inside `FcgiService`, which answers 413.
    Router::new()
        .route("/", get(|| async { "native handler" }))
        .nest_service("/fcgi-test", wsgi)
        .nest_service("/blog", blog)
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(CompressionLayer::new())
                .layer(middleware::from_fn(error_page))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                ))
                .layer(ConcurrencyLimitLayer::new(256))
                .layer(RequestBodyLimitLayer::new(8 << 20)),
        )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let flup = args.next().unwrap_or_else(|| "127.0.0.1:9500".into());
    let php_fpm = args
        .next()
        .unwrap_or_else(|| "/run/php/php-fpm.sock".into());
    let root = args
        .next()
        .unwrap_or_else(|| std::env::temp_dir().to_string_lossy().into_owned());

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!("listening on http://{listen}");
    // ConnectionInfo: REMOTE_ADDR/PORT and SERVER_ADDR/PORT for the backends.
    let make = app(&flup, &php_fpm, &root).into_make_service_with_connect_info::<ConnectionInfo>();
    axum::serve(listener, make).await
}
