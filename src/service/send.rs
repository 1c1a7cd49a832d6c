//! Sending one encoded request to one backend of the fleet and reading its response
//! head: a pooled connection (reused or newly opened), the exchange on it, and the
//! stale-connection retry, as an outer/inner pair ([`send_on`] retries what
//! [`try_send_request`] reports as safe to retry). Choosing the backend, and trying
//! another one, is `dispatch.rs`'s job.
//!
//! This is where the generic pool meets the FastCGI connection: the pool holds
//! `Connection`s without knowing what they are ([`Poolable`] below), and an exchange
//! owns the pool's handle, so the connection goes back by itself when the exchange
//! (usually inside the response body) is dropped after a clean END_REQUEST.

use std::future::poll_fn;

use bytes::Bytes;
use tokio::time::Instant;

use super::backend::Member;
use super::{Inner, send_mux};
use crate::body::PooledExchange;
use crate::cgi::head::{HeadParser, ResponseHead};
use crate::client::call::Call;
use crate::client::conn::Connection;
use crate::client::exchange::{Deadlines, Event, Exchange, Outgoing};
use crate::client::stream::Stream;
use crate::client::upload::Upload;
use crate::error::{Error, ErrorKind, Timeout};
use crate::pool::{Checkout, Poolable, Pooled, Reuse};
use crate::proto::{EndRequest, ProtocolStatus, Role};

impl Poolable for Connection {
    fn can_reuse(&self) -> bool {
        self.reusable
    }

    fn is_alive(&self) -> bool {
        self.probe_alive()
    }
}

/// An encoded request: PARAMS (and STDIN, when the body was in memory) plus whatever
/// of the body is still to be streamed.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) records: Bytes,
    pub(crate) stdin: Option<Upload>,
    /// A Filter's data file (FCGI_DATA), replayed with the body.
    pub(crate) data: Option<Upload>,
    /// The method may be replayed on another backend even if the first one may have run
    /// it (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
    pub(crate) idempotent: bool,
    /// The role BEGIN_REQUEST asks for.
    pub(crate) role: Role,
}

/// The response head and the exchange whose remaining STDOUT is the body.
pub(crate) struct Head {
    pub(crate) exchange: PooledExchange,
    pub(crate) head: ResponseHead,
    /// Body bytes that arrived with the head.
    pub(crate) rest: Bytes,
}

/// How sending on one backend failed.
pub(crate) struct Failed {
    pub(crate) error: Error,
    /// The request, given back when no response byte arrived and its body could be
    /// rewound: it may be sent again (whether it *should* be depends on the error).
    pub(crate) request: Option<Encoded>,
    /// The connection had served earlier requests (only such a one can be stale).
    pub(super) reused: bool,
}

/// Sends the request on one backend; a reused connection found stale is retried once,
/// on a genuinely new connection to the same backend (never another pooled one, which
/// may be just as stale: php-fpm recycles workers in bursts).
pub(crate) async fn send_on(
    inner: &Inner,
    endpoint: &Member,
    request: Encoded,
    started: Instant,
) -> Result<Head, Failed> {
    let counters = &endpoint.service.counters;
    counters.count_request();
    let result = send_with_retry(inner, endpoint, request, started).await;
    match &result {
        Ok(head) => {
            let elapsed = started.elapsed();
            counters.record_head(head.head.status, elapsed);
            record_in_span("head_us", elapsed);
        }
        Err(failed) => counters.record_failure(&failed.error),
    }
    result
}

async fn send_with_retry(
    inner: &Inner,
    endpoint: &Member,
    request: Encoded,
    started: Instant,
) -> Result<Head, Failed> {
    // A body that cannot be replayed goes on a new connection: a pooled one may belong
    // to a php-fpm worker that is exiting after its last request (`pm.max_requests`),
    // and the EOF would come after part of the body is gone, with nothing to retry
    // (seen in the soak, `scripts/chaos.sh`: streamed POSTs failing with no fault near
    // them). A worker that accepts a new connection is not exiting; the cost is one
    // connect per streamed upload, small beside a body over the read-ahead. At the cap
    // the pool closes an idle connection to make room, which also frees its worker.
    //
    // A non-idempotent method with a replayable body gets the probe (one syscall): the
    // stale retry below replays it, and an EOF without a byte on a reused connection is
    // usually a recycled worker but could be a crash after the script read the
    // request; probing first leaves only the race where the backend closes between the
    // probe and the write (measured with php-fpm recycling its worker every 2 requests:
    // stale retries of POSTs drop from every second request to 0-2 in 100,
    // `tests/health.rs::posts_probe_pooled_connections_…`). A replayable idempotent
    // request skips it: its retry is safe, at the cost of a round trip once per
    // recycled worker instead of a syscall on every request.
    let replayable = request.stdin.as_ref().is_none_or(Upload::is_replayable)
        && request.data.as_ref().is_none_or(Upload::is_replayable);
    let reuse = if replayable {
        Reuse::Idle {
            probe: !request.idempotent,
        }
    } else {
        Reuse::Never
    };
    match try_send_request(inner, endpoint, request, reuse, started).await {
        Err(Failed {
            error,
            request: Some(request),
            reused: true,
        }) if error.kind() == ErrorKind::Io => {
            // php-fpm closes kept-alive connections on its own (pm.max_requests, worker
            // recycling); the request never ran, so send it again.
            tracing::debug!(error = %error, "stale pooled FastCGI connection; retrying on a new one");
            endpoint.service.counters.count_stale_retry();
            inner.counters.count_stale_retry();
            try_send_request(inner, endpoint, request, Reuse::Never, started).await
        }
        Err(Failed {
            error,
            request: Some(request),
            ..
        }) if error.kind() == ErrorKind::CantMultiplex => {
            // The request did not run; its connection now carries one request at a
            // time (`send_mux.rs`), so send it again on this backend.
            tracing::debug!("FastCGI backend cannot multiplex; sending the request again");
            try_send_request(inner, endpoint, request, Reuse::Never, started).await
        }
        other => other,
    }
}

/// One attempt: a connection, the exchange on it, the response head.
async fn try_send_request(
    inner: &Inner,
    endpoint: &Member,
    request: Encoded,
    reuse: Reuse,
    started: Instant,
) -> Result<Head, Failed> {
    if let Some(limits) = send_mux::multiplexing(inner, endpoint, request.data.is_some()).await {
        return send_mux::try_send_multiplexed(inner, endpoint, request, &limits, started).await;
    }
    let conn = match connection(inner, endpoint, reuse).await {
        Ok(conn) => conn,
        Err(error) => {
            return Err(Failed {
                error,
                request: Some(request),
                reused: false,
            });
        }
    };
    let reused = conn.is_reused();
    let Encoded {
        records,
        stdin,
        data,
        idempotent,
        role,
    } = request;
    let outgoing = Outgoing {
        role,
        keep_conn: !conn.is_last_use(),
        records: records.clone(),
        stdin,
        data,
    };
    let deadlines = deadlines(inner, started);
    let mut exchange =
        Call::exclusive(Exchange::new(conn, outgoing, deadlines, inner.stderr_limit));
    let head = read_head(&mut exchange, inner.max_response_head, role);
    let head = match inner.unserved_after {
        // Only a new connection can be one no worker accepted.
        Some(after) if !reused => {
            let pool = &endpoint.service;
            pool.watch_unserved(endpoint.key(), after, &inner.counters, head)
                .await
        }
        _ => head.await,
    };
    let sent = Sent {
        records,
        idempotent,
        role,
        reused,
    };
    outcome(exchange, head, sent)
}

/// The timeouts of an exchange started now, for a request that arrived at `started`.
pub(super) fn deadlines(inner: &Inner, started: Instant) -> Deadlines {
    Deadlines {
        read_idle: inner.read_timeout,
        write_idle: inner.write_timeout,
        head: inner
            .head_timeout
            .and_then(|t| Instant::now().checked_add(t)),
        total: inner.total_timeout.and_then(|t| started.checked_add(t)),
    }
}

/// What was sent, to give the request back when it may be sent again.
pub(super) struct Sent {
    pub(super) records: Bytes,
    pub(super) idempotent: bool,
    pub(super) role: Role,
    pub(super) reused: bool,
}

/// The head, or the failure with the request given back when no response byte arrived
/// and its body could be rewound.
// The error gives the request back for a retry; it is returned once per attempt and
// moved only on the failure path, so a box would buy nothing.
#[allow(clippy::result_large_err)]
pub(super) fn outcome(
    exchange: PooledExchange,
    head: Result<(ResponseHead, Bytes), Error>,
    sent: Sent,
) -> Result<Head, Failed> {
    match head {
        Ok((head, rest)) => Ok(Head {
            exchange,
            head,
            rest,
        }),
        Err(error) => {
            let answered = exchange.response_started();
            let (mut stdin, mut data) = exchange.into_uploads();
            let again = !answered
                && stdin.as_mut().is_none_or(Upload::rewind)
                && data.as_mut().is_none_or(Upload::rewind);
            Err(Failed {
                error,
                request: again.then_some(Encoded {
                    records: sent.records,
                    stdin,
                    data,
                    idempotent: sent.idempotent,
                    role: sent.role,
                }),
                reused: sent.reused,
            })
        }
    }
}

/// Fills a field of the `fastcgi_backend` span (`service::dispatch`) with microseconds.
/// The span is at debug level: when it is off, this costs one check of the level.
fn record_in_span(field: &str, took: std::time::Duration) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        tracing::Span::current().record(field, micros);
    }
}

/// A pooled connection to the endpoint: an idle one, or a new one opened on granted
/// capacity.
async fn connection(
    inner: &Inner,
    endpoint: &Member,
    reuse: Reuse,
) -> Result<Pooled<Connection>, Error> {
    // Under `Multiplex::Auto` the backend was asked already (`send_mux::multiplexing`,
    // once per request): its FCGI_MAX_CONNS caps the pool (`admit`).
    let waiting = Instant::now();
    let checkout = endpoint.service.pool.checkout(reuse).await;
    let waited = waiting.elapsed();
    endpoint.service.counters.record_queue_wait(waited);
    inner.counters.record_queue_wait(waited);
    record_in_span("queue_wait_us", waited);
    let slot = match checkout? {
        Checkout::Reused(conn) => return Ok(conn),
        Checkout::Open(slot) => slot,
    };
    let slot = match endpoint.service.admit(slot) {
        Some(slot) => slot,
        // Over a cap lowered by the unserved check: that capacity was parked; wait for
        // a connection within the lowered cap (each pass parks one slot, so this ends
        // with the pool full and the checkout queueing for an idle connection).
        None => return Box::pin(connection(inner, endpoint, reuse)).await,
    };
    let backend = endpoint.key();
    // On failure the slot drops here and its capacity goes to the next waiter.
    let connecting = Stream::connect(backend);
    let stream = match inner.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, connecting)
            .await
            .map_err(|_| Error::timeout(Timeout::Connect)),
        None => Ok(connecting.await),
    }
    .and_then(|r| r.map_err(|err| Error::with(ErrorKind::Connect, format!("{backend}: {err}"))));
    match stream {
        Ok(stream) => Ok(slot.fill(Connection::new(stream))),
        Err(error) => {
            // Unreachable: what it said about itself may no longer hold when it is back
            // (a restart with another configuration, another program on the address).
            endpoint.service.capabilities.forget();
            Err(error)
        }
    }
}

/// Reads STDOUT until the CGI head is complete.
pub(crate) async fn read_head(
    exchange: &mut PooledExchange,
    limit: usize,
    role: Role,
) -> Result<(ResponseHead, Bytes), Error> {
    let mut parser = match role {
        Role::Authorizer => HeadParser::authorizer(limit),
        _ => HeadParser::new(limit),
    };
    loop {
        match poll_fn(|cx| exchange.poll_event(cx)).await? {
            Event::Stdout(data) => {
                if let Some(done) = parser.push(data)? {
                    exchange.head_done();
                    return Ok(done);
                }
            }
            Event::End(end) => return Err(ended_before_head(end, parser.buffered(), role)),
        }
    }
}

/// Names the refused role and what usually causes the refusal.
fn unknown_role_hint(role: Role) -> &'static str {
    match role {
        Role::Authorizer => {
            "the backend refused the Authorizer role; is this address really a FastCGI authorizer \
             (flup: WSGIServer(app, roles=(FCGI_AUTHORIZER,)))?"
        }
        Role::Filter => {
            "the backend refused the Filter role; is this address really a FastCGI filter?"
        }
        Role::Responder | Role::Unknown(_) => {
            "the backend refused the Responder role; is this address really a FastCGI responder?"
        }
    }
}

fn ended_before_head(end: EndRequest, buffered: usize, role: Role) -> Error {
    match end.protocol_status {
        ProtocolStatus::Overloaded => Error::new(ErrorKind::Overloaded),
        ProtocolStatus::CantMpxConn => Error::new(ErrorKind::CantMultiplex),
        ProtocolStatus::UnknownRole => Error::msg(ErrorKind::UnknownRole, unknown_role_hint(role)),
        _ if buffered == 0 => Error::msg(
            ErrorKind::InvalidResponseHead,
            format!(
                "the backend ended the request without output (app status {})",
                end.app_status
            ),
        ),
        _ => Error::msg(
            ErrorKind::InvalidResponseHead,
            format!(
                "the backend output ended before the blank line of the CGI header ({buffered} bytes)"
            ),
        ),
    }
}
