//! Sending one request on a backend's multiplexed connections: whether it goes there
//! ([`multiplexing`]), and the attempt itself. What follows the head (the body, the
//! retries) is the same as on an exclusive connection (`send.rs`).

use tokio::time::Instant;

use super::Inner;
use super::Multiplex;
use super::backend::Member;
use super::send::{Encoded, Failed, Head, Sent, deadlines, outcome, read_head};
use crate::client::call::Call;
use crate::client::exchange::begin_record;
use crate::client::mux::exchange::MuxExchange;
use crate::client::mux::set::MuxLimits;
use crate::defaults;
use crate::error::ErrorKind;

/// The limits of the backend's multiplexed connections when this request should go
/// on one: multiplexing forced, or the backend said `FCGI_MPXS_CONNS=1`. A Filter's
/// request (with FCGI_DATA) never does: its two body streams keep the exclusive path;
/// nor does a program the service spawned. Under `Multiplex::Auto` this is also where
/// the backend is asked, for every request (its FCGI_MAX_CONNS caps the exclusive pool
/// too), so the send path asks exactly once per attempt.
pub(super) async fn multiplexing(
    inner: &Inner,
    endpoint: &Member,
    has_data: bool,
) -> Option<MuxLimits> {
    if inner.is_spawned(endpoint.key()) {
        return None;
    }
    let pool = &endpoint.service;
    let (max_streams, max_conns) = match inner.multiplex {
        Multiplex::Off => return None,
        Multiplex::On { .. } if has_data => return None,
        Multiplex::On { max_streams } => (max_streams, pool.cap),
        Multiplex::Auto => {
            // Once per backend (the others wait for that one answer, bounded by its
            // timeout); after that an atomic read.
            let learned = pool.capabilities.learn(endpoint.key(), pool.cap).await;
            if has_data || !learned.multiplexes {
                return None;
            }
            let streams = learned.max_reqs.unwrap_or(defaults::MULTIPLEX_STREAMS);
            let conns = learned.max_conns.map_or(pool.cap, |n| n.min(pool.cap));
            (streams, conns)
        }
    };
    Some(MuxLimits {
        max_conns,
        max_streams,
        budget: inner.multiplex_buffer,
        spill_limit: inner.multiplex_spill,
        connect_timeout: inner.connect_timeout,
        queue_timeout: inner.queue_timeout,
        write_stall: inner.write_timeout,
        idle_timeout: inner.idle_timeout,
    })
}

/// One attempt on a multiplexed connection: a stream, the exchange on it, the head.
pub(super) async fn try_send_multiplexed(
    inner: &Inner,
    endpoint: &Member,
    request: Encoded,
    limits: &MuxLimits,
    started: Instant,
) -> Result<Head, Failed> {
    let pool = &endpoint.service;
    // Every stream keeps the connection: it is not this request's to close.
    let begin = begin_record(request.role, true);
    let waiting = Instant::now();
    let body_follows = request.stdin.is_some();
    let opened = pool
        .mux
        .open(
            endpoint.key(),
            begin,
            &request.records,
            body_follows,
            limits,
        )
        .await;
    let waited = waiting.elapsed();
    pool.counters.record_queue_wait(waited);
    inner.counters.record_queue_wait(waited);
    let opened = match opened {
        Ok(opened) => opened,
        Err(error) => {
            if error.kind() == ErrorKind::Connect {
                // What it said about itself may not hold when it is back.
                pool.capabilities.forget();
            }
            return Err(Failed {
                error,
                request: Some(request),
                reused: false,
            });
        }
    };
    let Encoded {
        records,
        stdin,
        idempotent,
        role,
        ..
    } = request;
    let conn = opened.conn.clone();
    let mut exchange = Call::multiplexed(MuxExchange::new(
        opened.stream,
        stdin,
        deadlines(inner, started),
        inner.stderr_limit,
        pool.mux.in_flight(),
    ));
    let head = read_head(&mut exchange, inner.max_response_head, role).await;
    if head
        .as_ref()
        .is_err_and(|e| e.kind() == ErrorKind::CantMultiplex)
    {
        // The backend refused a second request on the connection (libfcgi does):
        // one at a time from now on; `send.rs` sends this one again.
        pool.mux.downgrade(&conn);
    }
    let sent = Sent {
        records,
        idempotent,
        role,
        reused: opened.reused,
    };
    outcome(exchange, head, sent)
}
