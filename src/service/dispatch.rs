//! Sending a request to the fleet: choose a backend, send on it (`send.rs`), report
//! the outcome to its health, and try another backend when the failure allows it.
//!
//! Each backend is tried at most once per request, so a request makes at most as many
//! attempts as there are backends (nginx's `fastcgi_next_upstream_tries` bounded by the
//! upstream's size), and every retry after the first attempt is paid from the retry
//! budget. Which failures may move is [`classify`]'s decision: only before any response
//! byte, only with a body that could be rewound, and for a request that may have run
//! only when its method is idempotent (or the user opted in).

use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument;

use super::Inner;
use super::backend::Member;
use super::send::{Encoded, Failed, Head, send_on};
use crate::error::{Error, ErrorKind};
use crate::fleet::{Retry, Verdict, classify};

/// Sends the request to a backend of the fleet (another one if the first failed in a
/// way that allows it) and returns its response head.
pub(crate) async fn send_request(
    inner: &Inner,
    request: Encoded,
    started: Instant,
) -> Result<Head, Error> {
    inner.counters.count_request();
    // A service built outside a runtime starts its discovery here (one atomic load
    // once started).
    inner.discovery.start(&inner.fleet);
    let result = dispatch(inner, request, started).await;
    match &result {
        Ok(head) => inner
            .counters
            .record_head(head.head.status, started.elapsed()),
        Err(err) => inner.counters.record_failure(err),
    }
    result
}

async fn dispatch(inner: &Inner, mut request: Encoded, started: Instant) -> Result<Head, Error> {
    let fleet = &inner.fleet;
    // Allocates only when a retry happens.
    let mut tried: Vec<Arc<Member>> = Vec::new();
    let mut pick = fleet.pick(&tried).ok_or_else(|| {
        let why = if fleet.members().is_empty() {
            "the service has no backends (discovery removed them all or added none yet)".to_owned()
        } else {
            format!("every backend is ejected: {fleet}")
        };
        Error::msg(ErrorKind::NoBackend, why)
    })?;
    loop {
        let endpoint = Arc::clone(pick.endpoint());
        let span = tracing::debug_span!(
            "fastcgi_backend",
            backend = %endpoint.key(),
            trial = pick.is_trial(),
            panic = pick.is_panic(),
            attempt = tried.len() + 1,
            // Filled in by `send` when known: time waiting for a connection, and from
            // the start of the request to its response head.
            queue_wait_us = tracing::field::Empty,
            head_us = tracing::field::Empty
        );
        let Failed {
            error,
            request: back,
            ..
        } = match send_on(inner, &endpoint, request, started)
            .instrument(span)
            .await
        {
            Ok(head) => {
                pick.settle(Verdict::Healthy);
                fleet.budget.deposit();
                return Ok(head);
            }
            Err(failed) => failed,
        };
        let (verdict, retry) = classify(&error);
        let error = unavailable_in_outage(pick.is_panic(), retry, error);
        pick.settle(verdict);
        let replay = match (retry, back) {
            (Retry::Unprocessed, Some(again)) => again,
            (Retry::MaybeProcessed, Some(again))
                if again.idempotent || inner.retry_non_idempotent =>
            {
                again
            }
            _ => return Err(error),
        };
        tried.push(Arc::clone(&endpoint));
        let Some(next) = fleet.pick(&tried) else {
            return Err(error);
        };
        if !fleet.budget.withdraw() {
            fleet.count_over_budget();
            tracing::warn!(backend = %endpoint.key(), error = %error, "not retrying on another FastCGI backend: the retry budget is spent");
            return Err(error);
        }
        tracing::info!(
            from = %endpoint.key(),
            to = %next.endpoint().key(),
            error = %error,
            "retrying the request on another FastCGI backend"
        );
        endpoint.service.counters.count_retry();
        inner.counters.count_retry();
        request = replay;
        pick = next;
    }
}

/// A request sent to an ejected backend because every backend was out (panic routing,
/// `fleet::outage`) that no application saw (refused, connect timeout): the answer is
/// the 503 with `Retry-After` it would have had without panic routing, not a 502,
/// because what the client needs to know is that the whole fleet is unavailable.
fn unavailable_in_outage(panic: bool, retry: Retry, error: Error) -> Error {
    if !panic || retry != Retry::Unprocessed {
        return error;
    }
    Error::msg(
        ErrorKind::NoBackend,
        format!("every backend is ejected, and the one tried anyway failed: {error}"),
    )
}
