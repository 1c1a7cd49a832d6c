//! Prometheus metrics for a FastCGI mount: an axum app with an `FcgiService` at `/app`
//! and `/metrics` in the Prometheus text format, from `metrics-exporter-prometheus`'s
//! recorder (no listener of its own: the app's router serves it).
//!
//! ```text
//! cargo run --example prometheus --features metrics -- tcp://127.0.0.1:9000,unix:/run/php/php8.2-fpm.sock 127.0.0.1:3000
//!
//! curl -i http://127.0.0.1:3000/app/hello     # through FastCGI (a 502 with no backend up)
//! curl http://127.0.0.1:3000/metrics          # fastcgi_requests_total{mount="/app"} 1, ...
//! ```
//!
//! Arguments, each falling back to an environment variable, then a default: `BACKENDS`
//! (`FCGI_BACKENDS`, `tcp://127.0.0.1:9000`; several separated by commas make a fleet,
//! with one `fastcgi_backend_*` series per backend) and `LISTEN` (`LISTEN`,
//! `127.0.0.1:3000`). It runs without any backend listening: requests then get a 502
//! and count as `fastcgi_failures_total{cause="connect"}`.
//!
//! The figures are taken when Prometheus scrapes (`Reporter::report_once` in the
//! handler), so they are as fresh as the scrape and nothing runs in between.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_fastcgi::metrics::Reporter;
use tower_fastcgi::{Backend, ConnectionInfo, FcgiService};

/// What the `/metrics` handler needs: the service's reporter and the recorder's handle.
#[derive(Clone)]
struct Scrape {
    reporter: Reporter,
    prometheus: PrometheusHandle,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let mut args = std::env::args().skip(1);
    let backends = setting(args.next(), "FCGI_BACKENDS", "tcp://127.0.0.1:9000");
    let listen = setting(args.next(), "LISTEN", "127.0.0.1:3000");
    let backends = backends
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<Backend>, _>>()?;

    // The global recorder every `metrics` call in the process reports to.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    let app = FcgiService::builder()
        .backends(backends)
        .max_connections(8)
        .connect_timeout(Duration::from_secs(2))
        .build();
    let scrape = Scrape {
        reporter: Reporter::new(app.clone(), "/app"),
        prometheus,
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(scrape)
        .nest_service("/app", app);

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!("FastCGI mount: http://{addr}/app/, metrics: http://{addr}/metrics");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// A scrape: take the service's snapshot, then render everything the recorder holds.
async fn metrics(State(scrape): State<Scrape>) -> impl IntoResponse {
    scrape.reporter.report_once();
    // No histograms here, but upkeep is the recorder's maintenance (and what expires
    // idle series when `idle_timeout` is set); the scrape is a fine moment for it.
    scrape.prometheus.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        scrape.prometheus.render(),
    )
}

fn setting(arg: Option<String>, var: &str, default: &str) -> String {
    arg.or_else(|| std::env::var(var).ok())
        .unwrap_or_else(|| default.to_owned())
}
