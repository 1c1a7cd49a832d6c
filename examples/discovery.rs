//! Backends that change at run time, driven by a channel: the service starts with
//! backend "one", a discovery stream adds "two" after a second, then removes "one",
//! which drains (its requests finish, its connections close) and leaves the stats.
//! A client loop shows who answers. Nothing to install: both backends are the in-repo
//! responder on Unix sockets; the run ends by itself after about four seconds.
//!
//! ```text
//! cargo run --example discovery
//! ```
//!
//! In production the channel's sender is fed by whatever knows the backends: a
//! Kubernetes endpoints watcher, Consul, a config file reload (`SIGHUP`).

#[path = "support/responder.rs"]
mod responder;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use http_body_util::{BodyExt, Empty};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_fastcgi::{Backend, Change, FcgiService};

use responder::{After, Listen, Request, Stats, Writer};

/// `tokio::sync::mpsc::Receiver` as the `Stream` that `discover` takes (tokio-stream's
/// `ReceiverStream` does the same, if it is in your tree).
struct Changes(mpsc::Receiver<Change>);

impl Stream for Changes {
    type Item = Result<Change, std::convert::Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|change| change.map(Ok))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let dir = tempfile::tempdir()?;
    let one = backend(dir.path(), "one")?;
    let two = backend(dir.path(), "two")?;

    let (changes, stream) = mpsc::channel(8);
    let svc = FcgiService::builder()
        .backend(one.clone())
        .discover(Changes(stream))
        .build();

    // The discovery source: a second backend joins, then the first leaves.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = changes.send(Change::Insert(two)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = changes.send(Change::Remove(one)).await;
        // Dropping the sender ends the stream; the set stays as it is.
    });

    for tick in 0..20 {
        let res = svc
            .clone()
            .oneshot(http::Request::get("/").body(Empty::<Bytes>::new())?)
            .await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        let members: Vec<String> = svc
            .backend_stats()
            .iter()
            .map(|b| {
                let state = if b.draining { " (draining)" } else { "" };
                format!("{}{state}", b.backend)
            })
            .collect();
        println!(
            "t={:.1}s {status} from {:<4} backends: {}",
            f64::from(tick) * 0.2,
            String::from_utf8_lossy(&body),
            members.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A responder on `dir/name.sock` that answers with its name.
fn backend(dir: &std::path::Path, name: &'static str) -> std::io::Result<Backend> {
    let socket = dir.join(format!("{name}.sock"));
    let listener = tokio::net::UnixListener::bind(&socket)?;
    tokio::spawn(responder::serve(
        Listen::Unix(listener, socket.clone()),
        move |req, out| answer(req, out, name),
        Arc::new(Stats::default()),
    ));
    Ok(Backend::unix(socket))
}

async fn answer(
    mut req: Request,
    mut out: Writer,
    name: &'static str,
) -> std::io::Result<(Request, Writer, After)> {
    req.drain_stdin().await?;
    out.stdout(format!("Content-Type: text/plain\r\n\r\n{name}").as_bytes())
        .await?;
    out.end(0).await?;
    Ok((req, out, After::KeepIfAsked))
}
