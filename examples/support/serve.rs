//! Serving a router over HTTP/1 like `axum::serve`, with a bounded read buffer per client
//! connection (which `axum::serve` does not expose) and `ConnectionInfo` for
//! REMOTE_ADDR/SERVER_ADDR.

use axum::Router;
use hyper::body::Incoming;
use tower::ServiceExt;
use tower_fastcgi::ConnectionInfo;

/// hyper's read buffer per client connection. hyper's default (about 400 KiB) is what a
/// client uploading faster than the backend reads fills; with hundreds of concurrent
/// uploads that is hundreds of MiB (BENCHMARKS.md). 64 KiB still reads a whole STDIN
/// record's worth per syscall.
pub const MAX_READ_BUF: usize = 64 * 1024;

/// Accepts connections from `listener` and serves `app` on each, HTTP/1 only. Never
/// returns; drop the future to stop accepting.
pub async fn serve_http1(listener: tokio::net::TcpListener, app: Router) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_READ_BUF)
        .timer(hyper_util::rt::TokioTimer::new());
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let info = ConnectionInfo {
            remote: Some(remote),
            local: tcp.local_addr().ok(),
            ..ConnectionInfo::default()
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(info);
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "client connection ended with an error");
            }
        });
    }
}
