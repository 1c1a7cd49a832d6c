//! A PHP site inside an axum app: [`PhpSite`] answers everything under `/` (static files,
//! `*.php` through php-fpm, pretty URLs through `/index.php`) beside a native `/api` route.
//!
//! ```text
//! sudo apt-get install php-fpm          # Debian 12: /run/php/php8.2-fpm.sock
//! cargo run --example php -- /run/php/php8.2-fpm.sock /var/www/html 127.0.0.1:8080
//!
//! curl -i http://127.0.0.1:8080/             # /var/www/html/index.php
//! curl -i http://127.0.0.1:8080/blog/hello   # no such file: /index.php runs
//! curl -i http://127.0.0.1:8080/api/hello    # Rust
//! ```
//!
//! Arguments, each falling back to an environment variable, then a default:
//! `SOCKET` (`PHP_FPM_SOCKET`, `/run/php/php8.2-fpm.sock`), `ROOT` (`DOCUMENT_ROOT`,
//! `/var/www/html`) and `LISTEN` (`LISTEN`, `127.0.0.1:8080`). The user running this needs
//! write access to the socket (Debian's pool: group `www-data`) and php-fpm needs read
//! access to ROOT. `RUST_LOG=debug` shows each FastCGI exchange.
//!
//! [`PhpSite`]: tower_fastcgi::PhpSite

use std::time::Duration;

use axum::{Router, routing::get};
use tower_fastcgi::{ConnectionInfo, PhpSite};
use tower_http::{compression::CompressionLayer, trace::TraceLayer};

#[path = "support/listen.rs"]
mod listen;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();

    let mut args = std::env::args().skip(1);
    let socket = setting(args.next(), "PHP_FPM_SOCKET", "/run/php/php8.2-fpm.sock");
    let root = setting(args.next(), "DOCUMENT_ROOT", "/var/www/html");
    let listen = setting(args.next(), "LISTEN", "127.0.0.1:8080");

    // What an nginx server block with `try_files` and `location ~ \.php$` does.
    let php = PhpSite::builder()
        .unix(&socket)
        .root(&root)
        // Directories the application keeps in its root but must never be served.
        .deny(["/vendor"])
        .fastcgi(|fcgi| {
            fcgi.max_connections(8) // keep it ≤ php-fpm's pm.max_children
                .read_timeout(Duration::from_secs(60))
        })
        .build();

    let app = Router::new()
        .route("/api/hello", get(|| async { "hello from Rust\n" }))
        .fallback_service(php)
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http());

    // TCP_NODELAY: PHP output arrives in pieces, and Nagle's algorithm would hold a small
    // last piece back until the client's delayed ACK (about 40 ms).
    let listener = listen::listen(&listen).await?;
    tracing::info!("serving {root} through php-fpm at {socket} on http://{listen}");
    // ConnectionInfo gives PHP REMOTE_ADDR, REMOTE_PORT, SERVER_ADDR and SERVER_PORT.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .await
}

/// The command-line argument, else the environment variable, else the default.
fn setting(arg: Option<String>, var: &str, default: &str) -> String {
    arg.or_else(|| std::env::var(var).ok())
        .unwrap_or_else(|| default.to_owned())
}
