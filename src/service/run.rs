//! One exchange with the backend: params → connection → head → response, the stale-connection
//! retry is in `send.rs`. The routing and local-redirect loop around it is in
//! `redirect.rs`.

use std::future::{Future, poll_fn};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use tokio::time::Instant;

use super::Inner;
use super::dispatch::send_request;
use super::redirect::Transport;
use super::send::{Encoded, Head};
use crate::body::FcgiBody;
use crate::body::PooledExchange;
use crate::cgi::env::{self, RequestInfo, Script};
use crate::cgi::head::ResponseHead;
use crate::cgi::{ConnectionInfo, Mount};
use crate::client::exchange::{Event, REQUEST_ID};
use crate::client::upload::Upload;
use crate::error::Error;
use crate::proto::{ParamsEncoder, RecordType, Role, encode_stream};

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
) -> Result<(PooledExchange, ResponseHead, Bytes), Error> {
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
            role: Role::Responder,
            data: None,
        },
    )?;
    params.finish();
    // A body already in memory goes out in the same write as the params.
    let upload = match upload {
        Upload::Empty => {
            encode_stream(&mut request, RecordType::Stdin, REQUEST_ID, b"");
            None
        }
        Upload::Chunks { chunks, .. } => {
            for chunk in &chunks {
                encode_stream(&mut request, RecordType::Stdin, REQUEST_ID, chunk);
            }
            encode_stream(&mut request, RecordType::Stdin, REQUEST_ID, b"");
            None
        }
        other => Some(other),
    };
    let encoded = Encoded {
        records: request.freeze(),
        stdin: upload,
        data: None,
        idempotent: parts.method.is_idempotent(),
        role: Role::Responder,
    };
    let Head {
        exchange,
        head,
        rest,
    } = send_request(inner, encoded, started).await?;
    Ok((exchange, head, rest))
}

/// FastCGI on a pooled connection: the [`Transport`] of `FcgiService` and `PhpSite`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastCgi;

impl Transport for FastCgi {
    type Exchange = PooledExchange;

    fn exchange_head<'a>(
        &'a self,
        inner: &'a Inner,
        parts: &'a Parts,
        mount: Mount<'a>,
        target: &'a Script<'a>,
        upload: Upload,
        content_length: Option<u64>,
        started: Instant,
    ) -> impl Future<Output = Result<(PooledExchange, ResponseHead, Bytes), Error>> + Send + 'a
    {
        exchange_head(inner, parts, mount, target, upload, content_length, started)
    }

    fn discard(
        &self,
        inner: &Inner,
        exchange: PooledExchange,
        already: usize,
    ) -> impl Future<Output = ()> + Send {
        drain(inner, exchange, already)
    }

    fn body(&self, exchange: PooledExchange, rest: Bytes, content_length: Option<u64>) -> FcgiBody {
        FcgiBody::stream(exchange, rest, content_length)
    }
}

pub(crate) async fn build_response<T: Transport>(
    inner: &Inner,
    transport: &T,
    method: &Method,
    exchange: T::Exchange,
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
        transport.discard(inner, exchange, rest.len()).await;
        FcgiBody::empty()
    } else {
        transport.body(exchange, rest, head.content_length)
    };
    let mut res = Response::new(body);
    *res.status_mut() = head.status;
    *res.headers_mut() = head.headers;
    Ok(res)
}

/// Discards the rest of a response nobody will read, then returns the connection.
pub(crate) async fn drain(inner: &Inner, mut exchange: PooledExchange, mut discarded: usize) {
    loop {
        match poll_fn(|cx| exchange.poll_event(cx)).await {
            Ok(Event::Stdout(data)) => {
                discarded += data.len();
                if discarded > inner.bodyless_drain_limit {
                    return;
                }
            }
            // Dropping a cleanly ended exchange returns its connection to the pool.
            Ok(Event::End(_)) => return,
            Err(err) => {
                tracing::debug!(error = %err, "discarding the body of a bodyless response failed");
                return;
            }
        }
    }
}
