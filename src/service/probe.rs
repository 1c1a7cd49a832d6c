//! The active health-check task: every interval, probe each backend of the fleet at
//! once (each probe on its own, so one backend's timeout never delays another's
//! verdict), count the result and tell the fleet's health.
//!
//! It holds the fleet, never the service (like the discovery tasks in `discover.rs`,
//! which start and stop it), so it ends with the last service clone; the probes in
//! flight are in a `JoinSet`, aborted when the task is dropped.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::HealthCheck;
use super::backend::{BackendPool, Member};
use super::builder::Probe;
use super::send::read_head;
use crate::client::call::Call;
use crate::client::conn::Connection;
use crate::client::exchange::{Deadlines, Event, Exchange, Outgoing, REQUEST_ID};
use crate::client::stream::Stream;
use crate::client::values::get_values;
use crate::error::{Error, ErrorKind, Timeout};
use crate::fleet::{Fleet, Load};
use crate::pool::{Checkout, Reuse};
use crate::proto::{ParamsEncoder, RecordType, Role, encode_stream};

/// What one probe found.
enum Found {
    Alive,
    Failed(Error),
    /// Not sent: the answer would only reflect the service's own pool.
    Skipped(&'static str),
}

/// Probes every member every `check.interval`, until dropped.
pub(crate) async fn run(fleet: Arc<Fleet<BackendPool>>, check: HealthCheck) {
    let check = Arc::new(check);
    let mut ticks = tokio::time::interval(check.interval);
    // After a stall (or probes slower than the interval), one round is enough.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut round = JoinSet::new();
        for member in fleet.members().iter() {
            let member = Arc::clone(member);
            let check = Arc::clone(&check);
            round.spawn(async move {
                let found = probe(&member, &check).await;
                (member, found)
            });
        }
        while let Some(done) = round.join_next().await {
            // A probe task cannot panic (no panics in library code); a join error only
            // means it was aborted, which happens when this task is dropped.
            let Ok((member, found)) = done else { continue };
            record(&fleet, &member, found);
        }
    }
}

fn record(fleet: &Fleet<BackendPool>, member: &Member, found: Found) {
    let probes = &member.service.probes;
    match found {
        Found::Alive => {
            probes.count(Some(true));
            fleet.record_probe(member, true);
        }
        Found::Failed(error) => {
            probes.count(Some(false));
            tracing::debug!(backend = %member.key(), error = %error, "FastCGI health probe failed");
            fleet.record_probe(member, false);
        }
        Found::Skipped(why) => {
            probes.count(None);
            tracing::trace!(backend = %member.key(), why, "FastCGI health probe skipped");
        }
    }
}

async fn probe(member: &Member, check: &HealthCheck) -> Found {
    if member.is_removed() {
        return Found::Skipped("removed");
    }
    let pool = &member.service;
    match &check.probe {
        Probe::GetValues => {
            if pool.snapshot().open >= pool.effective_cap() {
                // php-fpm pins a worker to each of our kept-alive connections: with all of
                // them open, a probe connection may wait for a worker the pool holds.
                return Found::Skipped("every connection the pool may open is open");
            }
            match get_values(member.key(), check.timeout).await {
                Ok(Some(_)) => Found::Alive,
                Ok(None) => Found::Failed(Error::msg(
                    ErrorKind::InvalidResponseHead,
                    "closed the connection without answering FCGI_GET_VALUES",
                )),
                // Silence while our idle connections hold workers may be our own doing
                // (a cap above the backend's workers): inconclusive. Passive health
                // still sees a backend that hangs on real requests.
                Err(error) if error.is_timeout() && pool.snapshot().idle > 0 => {
                    Found::Skipped("no answer while idle pooled connections may hold every worker")
                }
                Err(error) => Found::Failed(error),
            }
        }
        Probe::Ping(path) => {
            if pool.load().saturated {
                return Found::Skipped("every pooled connection is busy");
            }
            match tokio::time::timeout(check.timeout, ping(member, path, check)).await {
                Ok(Ok(true)) => Found::Alive,
                Ok(Ok(false)) => Found::Skipped("the connection cap is lowered and reached"),
                Ok(Err(error)) => Found::Failed(error),
                Err(_) => Found::Failed(Error::timeout(Timeout::ResponseHead)),
            }
        }
    }
}

/// A GET for `path` (as SCRIPT_NAME, which php-fpm matches `ping.path` against) on a
/// pooled connection, read to its end so the connection can serve again. `Ok(false)`:
/// not sent, the cap lowered by the unserved check leaves no room.
async fn ping(member: &Member, path: &str, check: &HealthCheck) -> Result<bool, Error> {
    let backend = member.key();
    let conn = match member
        .service
        .pool
        .checkout(Reuse::Idle { probe: true })
        .await?
    {
        Checkout::Reused(conn) => conn,
        Checkout::Open(slot) => {
            let Some(slot) = member.service.admit(slot) else {
                return Ok(false);
            };
            let stream = Stream::connect(backend)
                .await
                .map_err(|err| Error::with(ErrorKind::Connect, format!("{backend}: {err}")))?;
            slot.fill(Connection::new(stream))
        }
    };
    let outgoing = Outgoing {
        role: Role::Responder,
        keep_conn: !conn.is_last_use(),
        records: ping_records(path)?.freeze(),
        stdin: None,
        data: None,
    };
    let deadline = Instant::now().checked_add(check.timeout);
    let deadlines = Deadlines {
        read_idle: Some(check.timeout),
        write_idle: Some(check.timeout),
        head: deadline,
        total: deadline,
    };
    let mut exchange = Call::exclusive(Exchange::new(conn, outgoing, deadlines, 1024));
    let (head, _) = read_head(&mut exchange, 16 * 1024, Role::Responder).await?;
    // The body ("pong") is read to END_REQUEST so the connection returns to the pool.
    while let Event::Stdout(_) = poll_fn(|cx| exchange.poll_event(cx)).await? {}
    if head.status != http::StatusCode::OK {
        return Err(Error::msg(
            ErrorKind::InvalidResponseHead,
            format!("the ping {path} answered {}", head.status),
        ));
    }
    Ok(true)
}

/// PARAMS and the empty STDIN of the ping: the variables php-fpm needs to run it as a
/// request (it answers the ping before looking for a script file).
fn ping_records(path: &str) -> Result<BytesMut, Error> {
    let mut buf = BytesMut::with_capacity(256);
    let mut params = ParamsEncoder::new(&mut buf, REQUEST_ID);
    for (name, value) in [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", crate::defaults::SERVER_SOFTWARE),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", path),
        ("SCRIPT_FILENAME", path),
        ("REQUEST_URI", path),
        ("QUERY_STRING", ""),
        ("CONTENT_LENGTH", ""),
        ("SERVER_NAME", "localhost"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ] {
        params
            .push(name.as_bytes(), value.as_bytes())
            .map_err(Error::protocol)?;
    }
    params.finish();
    encode_stream(&mut buf, RecordType::Stdin, REQUEST_ID, b"");
    Ok(buf)
}
