//! The connectors' [`Transport`]: pick a backend, encode the head with the protocol,
//! run the exchange to the response head, then stream the body until EOF.

use crate::proto::Role;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::Protocol;
use super::exchange::{Limits, StreamExchange};
use crate::body::FcgiBody;
use crate::cgi::env::{RequestInfo, Script};
use crate::cgi::head::{Dialect, HeadParser, ResponseHead};
use crate::cgi::{ConnectionInfo, Mount};
use crate::client::upload::Upload;
use crate::error::{Error, ErrorKind};
use crate::fleet::Verdict;
use crate::pool::Reuse;
use crate::service::Inner;
use crate::service::redirect::Transport;

/// A [`Transport`] speaking protocol `P`.
pub(crate) struct Connector<P>(PhantomData<fn() -> P>);

impl<P> Connector<P> {
    pub(crate) const fn new() -> Connector<P> {
        Connector(PhantomData)
    }
}

impl<P: Protocol> Transport for Connector<P> {
    type Exchange = StreamExchange;

    async fn exchange_head<'a>(
        &'a self,
        inner: &'a Inner,
        parts: &'a Parts,
        mount: Mount<'a>,
        target: &'a Script<'a>,
        upload: Upload,
        content_length: Option<u64>,
        started: Instant,
    ) -> Result<(StreamExchange, ResponseHead, Bytes), Error> {
        {
            let head = P::encode(
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
            inner.counters.count_request();
            let result = send::<P>(inner, head, upload, started).await;
            match &result {
                Ok((_, head, _)) => inner.counters.record_head(head.status, started.elapsed()),
                Err(err) => inner.counters.record_failure(err),
            }
            result
        }
    }

    /// Nothing to drain: the connection is never reused, so closing it is the end.
    fn discard(
        &self,
        _inner: &Inner,
        exchange: StreamExchange,
        _already: usize,
    ) -> impl Future<Output = ()> + Send {
        drop(exchange);
        std::future::ready(())
    }

    fn body(&self, exchange: StreamExchange, rest: Bytes, content_length: Option<u64>) -> FcgiBody {
        FcgiBody::new(StreamBody {
            exchange: Some(exchange),
            pending: (!rest.is_empty()).then_some(rest),
            expected: content_length,
            received: 0,
        })
    }
}

/// One attempt on one backend of the fleet (no retry elsewhere: the request may have
/// run, and SCGI gives no way to tell; see the module docs).
async fn send<P: Protocol>(
    inner: &Inner,
    head: Bytes,
    upload: Upload,
    started: Instant,
) -> Result<(StreamExchange, ResponseHead, Bytes), Error> {
    // A service built outside a runtime starts its discovery here, as FastCGI's does.
    inner.discovery.start(&inner.fleet);
    let pick = inner.fleet.pick(&[]).ok_or_else(|| {
        Error::msg(
            ErrorKind::NoBackend,
            format!("no backend in rotation: {}", inner.fleet),
        )
    })?;
    let endpoint = Arc::clone(pick.endpoint());
    let backend = endpoint.key();
    // Capacity only: the slot is never filled (no connection is ever pooled), and held
    // until the exchange ends, so `max_connections` caps and queues as for FastCGI and
    // the fleet's load counts these requests.
    let waiting = Instant::now();
    let permit = endpoint.service.pool.checkout(Reuse::Never).await;
    let waited = waiting.elapsed();
    endpoint.service.counters.record_queue_wait(waited);
    inner.counters.record_queue_wait(waited);
    let permit = match permit {
        Ok(permit) => permit,
        Err(err) => {
            pick.settle(Verdict::Unknown);
            return Err(err);
        }
    };
    let limits = Limits {
        half_close: <P as super::sealed::Encode>::HALF_CLOSE,
        connect: inner.connect_timeout,
        head: inner.head_timeout,
        read: inner.read_timeout,
        write: inner.write_timeout,
        total: inner.total_timeout,
    };
    let result = async {
        let mut exchange =
            StreamExchange::open(backend, head, upload, limits, started, permit).await?;
        let (head, rest) = read_head(&mut exchange, inner.max_response_head).await?;
        Ok((exchange, head, rest))
    }
    .await;
    pick.settle(match &result {
        Ok(_) => Verdict::Healthy,
        Err(err) if is_client_side(err) => Verdict::Unknown,
        Err(_) => Verdict::Failed,
    });
    result
}

fn is_client_side(err: &Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::RequestBody | ErrorKind::RequestBodyTooLarge | ErrorKind::Spool
    )
}

async fn read_head(
    exchange: &mut StreamExchange,
    limit: usize,
) -> Result<(ResponseHead, Bytes), Error> {
    let mut parser = HeadParser::with_dialect(limit, Dialect::Stream);
    loop {
        match poll_fn(|cx| exchange.poll_read(cx)).await? {
            Some(data) => {
                if let Some(done) = parser.push(data)? {
                    exchange.head_done();
                    return Ok(done);
                }
            }
            None => {
                let buffered = parser.buffered();
                let why = match exchange.write_error() {
                    Some(err) => format!(
                        "the backend closed the connection before a response head \
                         ({buffered} bytes) after a failed write: {err}"
                    ),
                    None if buffered == 0 => {
                        "the backend closed the connection without a response".to_owned()
                    }
                    None => format!(
                        "the backend closed the connection before the blank line ending \
                         the response head ({buffered} bytes)"
                    ),
                };
                return Err(Error::msg(ErrorKind::InvalidResponseHead, why));
            }
        }
    }
}

/// The response body: bytes as the client reads them, until EOF, or until the
/// backend's Content-Length is reached. An EOF short of that length is an error, never
/// a clean end, and so are bytes beyond it.
struct StreamBody {
    exchange: Option<StreamExchange>,
    pending: Option<Bytes>,
    expected: Option<u64>,
    received: u64,
}

impl StreamBody {
    fn take(&mut self, data: Bytes) -> Result<Bytes, Error> {
        self.received += data.len() as u64;
        if let Some(expected) = self.expected {
            if self.received > expected {
                self.exchange = None;
                return Err(Error::msg(
                    ErrorKind::ContentLengthMismatch,
                    format!(
                        "Content-Length {expected} but the backend sent at least {} bytes",
                        self.received
                    ),
                ));
            }
            if self.received == expected {
                // Complete: close now rather than wait for the server's EOF.
                if let Some(exchange) = self.exchange.take() {
                    exchange.finish();
                }
            }
        }
        Ok(data)
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if let Some(data) = this.pending.take() {
            return Poll::Ready(Some(this.take(data).map(Frame::data)));
        }
        if this.expected == Some(this.received)
            && let Some(exchange) = this.exchange.take()
        {
            exchange.finish();
        }
        let Some(exchange) = &mut this.exchange else {
            return Poll::Ready(None);
        };
        match exchange.poll_read(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(data))) => Poll::Ready(Some(this.take(data).map(Frame::data))),
            Poll::Ready(Ok(None)) => {
                this.exchange = None;
                match this.expected {
                    Some(expected) if this.received != expected => {
                        Poll::Ready(Some(Err(Error::msg(
                            ErrorKind::ContentLengthMismatch,
                            format!(
                                "Content-Length {expected} but the backend closed after {} bytes",
                                this.received
                            ),
                        ))))
                    }
                    _ => Poll::Ready(None),
                }
            }
            Poll::Ready(Err(err)) => {
                this.exchange = None;
                Poll::Ready(Some(Err(err)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.exchange.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.expected {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.received)),
            None => SizeHint::default(),
        }
    }
}
