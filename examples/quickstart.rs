//! The demo: an axum app with a native handler at `/` and a FastCGI application at
//! `/fcgi-test`, with nothing to install.
//!
//! The FastCGI application is embedded (built on this crate's codec) and listens on a
//! Unix socket in a temporary directory. It prints its CGI environment as an HTML page,
//! like the classic `mod_proxy_fcgi` test app.
//!
//! ```text
//! cargo run --example quickstart
//! # then open http://127.0.0.1:3000/ and http://127.0.0.1:3000/fcgi-test/hello?x=1
//! ```
//!
//! Set `QUICKSTART_ADDR` to listen elsewhere (default `127.0.0.1:3000`).

#[path = "support/responder.rs"]
mod responder;

use std::sync::Arc;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use tower_fastcgi::{ConnectionInfo, FcgiService};
use tower_http::trace::TraceLayer;

use responder::{After, Listen, Request, Stats, Writer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();

    // The embedded FastCGI application, on a Unix socket only this process knows.
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("fcgi-test.sock");
    let listener = tokio::net::UnixListener::bind(&socket)?;
    tokio::spawn(responder::serve(
        Listen::Unix(listener, socket.clone()),
        env_page,
        Arc::new(Stats::default()),
    ));

    // The FastCGI route, mounted beside a native handler. Application mode: SCRIPT_NAME
    // is the mount prefix and PATH_INFO the rest, as with
    // `ProxyPass /fcgi-test fcgi://127.0.0.1:9500/` in Apache.
    let fcgi = FcgiService::builder().unix(&socket).build();
    let app = Router::new()
        .route("/", get(home))
        .nest_service("/fcgi-test", fcgi)
        .layer(TraceLayer::new_for_http());

    let addr = std::env::var("QUICKSTART_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}/");
    tracing::info!("FastCGI test page: http://{addr}/fcgi-test/hello?x=1");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

async fn home() -> Html<&'static str> {
    Html(
        "<!doctype html><title>tower-fastcgi</title>\
         <h1>Hello from a native axum handler</h1>\
         <p>The <a href=\"/fcgi-test/hello?x=1\">FastCGI test page</a> is served by a FastCGI \
         application through <code>tower_fastcgi::FcgiService</code>.</p>",
    )
}

/// The FastCGI application: answers every request with its sorted CGI environment.
async fn env_page(mut req: Request, mut out: Writer) -> std::io::Result<(Request, Writer, After)> {
    let body_len = req.drain_stdin().await?;
    let mut vars: Vec<_> = req.params.iter().collect();
    vars.sort();
    let mut html = String::from(
        "<!doctype html><title>FastCGI test</title><h1>FastCGI environment</h1>\
         <p>This page comes from a FastCGI application. Its CGI environment:</p>\n<table>\n",
    );
    for (name, value) in vars {
        html.push_str(&format!(
            "<tr><th align=left>{}</th><td>{}</td></tr>\n",
            escape(name),
            escape(value)
        ));
    }
    html.push_str(&format!(
        "</table>\n<p>Request body: {body_len} bytes.</p>\n"
    ));
    let head = format!(
        "Content-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        html.len()
    );
    out.stdout(head.as_bytes()).await?;
    if req.param("REQUEST_METHOD") != "HEAD" {
        out.stdout(html.as_bytes()).await?;
    }
    out.end(0).await?;
    Ok((req, out, After::KeepIfAsked))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
