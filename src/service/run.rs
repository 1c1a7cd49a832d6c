//! One exchange with the backend: params → connection → head → response, with the
//! stale-connection retry. The routing and local-redirect loop around it is in
//! `redirect.rs`.

use std::future::poll_fn;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use tokio::time::Instant;

use super::Inner;
use crate::body::FcgiBody;
use crate::cgi::env::{self, RequestInfo, Script};
use crate::cgi::head::{HeadParser, ResponseHead};
use crate::cgi::{ConnectionInfo, Mount};
use crate::client::exchange::{Deadlines, Event, Exchange, REQUEST_ID};
use crate::client::upload::Upload;
use crate::error::{Error, ErrorKind};
use crate::proto::{
    BeginRequest, EndRequest, ParamsEncoder, ProtocolStatus, RecordType, Role, encode_stream,
};

/// `{FCGI_BEGIN_REQUEST, 1, {FCGI_RESPONDER, FCGI_KEEP_CONN}}` and its non-keep twin.
static BEGIN_KEEP: [u8; 16] = begin_bytes(true);
static BEGIN_CLOSE: [u8; 16] = begin_bytes(false);

// Fixed-size arrays indexed below 8 in a const context (evaluated at compile time).
#[allow(clippy::indexing_slicing)]
const fn begin_bytes(keep_conn: bool) -> [u8; 16] {
    let header = crate::proto::Header::new(RecordType::BeginRequest, REQUEST_ID, 8, 0).to_bytes();
    let body = BeginRequest {
        role: Role::Responder,
        keep_conn,
    }
    .to_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 8 {
        out[i] = header[i];
        out[i + 8] = body[i];
        i += 1;
    }
    out
}

/// Encodes the request, sends it on a pooled connection and reads the response head,
/// retrying once on a fresh connection when a reused one turns out to be stale.
pub(super) async fn exchange_head(
    inner: &Inner,
    parts: &Parts,
    mount: Mount<'_>,
    target: &Script<'_>,
    upload: Upload,
    content_length: Option<u64>,
    started: Instant,
) -> Result<(Exchange, ResponseHead, Bytes), Error> {
    let mut request = BytesMut::with_capacity(1024);
    let mut params = ParamsEncoder::new(&mut request, REQUEST_ID);
    env::write_params(
        &mut params,
        &inner.cgi,
        &RequestInfo {
            parts,
            target,
            request_uri: mount.request_uri,
            content_length,
            connection: ConnectionInfo::from_extensions(&parts.extensions),
        },
    )?;
    params.finish();
    // A body already in memory goes out in the same write as the params.
    let (mut upload, upload_done) = match upload {
        Upload::Empty => {
            encode_stream(&mut request, RecordType::Stdin, REQUEST_ID, b"");
            (Upload::Empty, true)
        }
        Upload::Chunks { chunks, .. } => {
            for chunk in &chunks {
                encode_stream(&mut request, RecordType::Stdin, REQUEST_ID, chunk);
            }
            encode_stream(&mut request, RecordType::Stdin, REQUEST_ID, b"");
            (Upload::Empty, true)
        }
        other => (other, false),
    };
    let request = request.freeze();

    let pool = &inner.pool;
    let mut checkout = pool.checkout(!upload.is_replayable()).await?;
    let mut retried = false;
    loop {
        let keep = pool.wants_keep_alive(&checkout.conn);
        let begin = Bytes::from_static(if keep { &BEGIN_KEEP } else { &BEGIN_CLOSE });
        let deadlines = Deadlines {
            read_idle: inner.read_timeout,
            write_idle: inner.write_timeout,
            head: inner
                .head_timeout
                .and_then(|t| Instant::now().checked_add(t)),
            total: inner.total_timeout.and_then(|t| started.checked_add(t)),
        };
        let mut exchange = Exchange::new(
            checkout.conn,
            [begin, request.clone()],
            upload,
            upload_done,
            keep,
            deadlines,
            inner.stderr_limit,
        );
        match read_head(&mut exchange, inner.max_response_head).await {
            Ok((head, rest)) => return Ok((exchange, head, rest)),
            Err(err)
                if checkout.reused
                    && !retried
                    && err.kind() == ErrorKind::Io
                    && !exchange.response_started() =>
            {
                upload = exchange.into_upload();
                if !upload.rewind() {
                    return Err(err);
                }
                // php-fpm closes kept-alive connections on its own (pm.max_requests,
                // worker recycling); the request never ran, so send it again.
                tracing::debug!(error = %err, "stale pooled FastCGI connection; retrying on a new one");
                pool.count_retry();
                retried = true;
                checkout = pool.checkout_fresh().await?;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Reads STDOUT until the CGI head is complete.
async fn read_head(exchange: &mut Exchange, limit: usize) -> Result<(ResponseHead, Bytes), Error> {
    let mut parser = HeadParser::new(limit);
    loop {
        match poll_fn(|cx| exchange.poll_event(cx)).await? {
            Event::Stdout(data) => {
                if let Some(done) = parser.push(data)? {
                    exchange.head_done();
                    return Ok(done);
                }
            }
            Event::End(end) => return Err(ended_before_head(end, parser.buffered())),
        }
    }
}

/// END_REQUEST before a complete head: a rejection, or a script that printed no head.
fn ended_before_head(end: EndRequest, buffered: usize) -> Error {
    match end.protocol_status {
        ProtocolStatus::Overloaded => Error::new(ErrorKind::Overloaded),
        ProtocolStatus::CantMpxConn => Error::new(ErrorKind::CantMultiplex),
        ProtocolStatus::UnknownRole => Error::msg(
            ErrorKind::UnknownRole,
            "the backend refused the Responder role; is this address really a FastCGI responder?",
        ),
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

pub(super) async fn build_response(
    inner: &Inner,
    method: &Method,
    exchange: Exchange,
    head: ResponseHead,
    rest: Bytes,
) -> Result<Response<FcgiBody>, Error> {
    let bodyless = *method == Method::HEAD
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    let body = if bodyless {
        // No body goes to the client, but the backend may still send one (Go, flup and
        // fcgiwrap answer HEAD with a body): read it to END_REQUEST so the connection
        // can be reused, within a budget.
        drain(inner, exchange, rest.len()).await;
        FcgiBody::empty()
    } else {
        FcgiBody::stream(exchange, rest, head.content_length, inner.pool.clone())
    };
    let mut res = Response::new(body);
    *res.status_mut() = head.status;
    *res.headers_mut() = head.headers;
    Ok(res)
}

/// Discards the rest of a response nobody will read, then returns the connection.
pub(super) async fn drain(inner: &Inner, mut exchange: Exchange, mut discarded: usize) {
    loop {
        match poll_fn(|cx| exchange.poll_event(cx)).await {
            Ok(Event::Stdout(data)) => {
                discarded += data.len();
                if discarded > inner.bodyless_drain_limit {
                    return;
                }
            }
            Ok(Event::End(_)) => {
                exchange.release(&inner.pool);
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, "discarding the body of a bodyless response failed");
                return;
            }
        }
    }
}
