//! [`FcgiBody`]: the response body, streamed from STDOUT as the client consumes it.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::client::call::Call;
use crate::client::conn::Connection;
use crate::client::exchange::Event;
use crate::error::{BoxError, Error, ErrorKind};
use crate::pool::Pooled;
use crate::proto::ProtocolStatus;

/// A request on a pooled connection or a multiplexed stream: what a streaming body
/// drives. Dropping it after a clean END_REQUEST returns a pooled connection to its
/// pool (and frees a stream's id).
pub(crate) type PooledExchange = Call<Pooled<Connection>>;

/// The body of a response from [`FcgiService`](crate::FcgiService).
///
/// It reads the backend's STDOUT records only when polled, so bytes flow from the
/// backend as fast as the client takes them and memory stays bounded by one record.
/// It ends cleanly only on END_REQUEST: if the backend dies or stalls mid-body, or sends
/// a body that disagrees with its own `Content-Length`, the body yields an [`Error`] so
/// the server aborts the response instead of presenting a short body as complete.
/// Dropping it early (the client went away) closes the backend connection. Dropping it
/// after the whole announced `Content-Length` was read (as hyper does) keeps the
/// connection: END_REQUEST is read inline when buffered, else by a short task on the
/// current tokio runtime.
///
/// It implements `Default` (empty), so tower-http layers such as `Timeout` can build
/// their own responses around it.
#[derive(Default)]
pub struct FcgiBody {
    kind: Kind,
}

#[derive(Default)]
enum Kind {
    #[default]
    Empty,
    Full(Option<Bytes>),
    /// Inline: the exchange in it is already on the heap (`Call`).
    Stream(StreamState),
    Boxed(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

struct StreamState {
    exchange: Option<PooledExchange>,
    /// Body bytes that arrived in the same record as the end of the head.
    pending: Option<Bytes>,
    /// The backend's Content-Length, which the body must match exactly.
    expected: Option<u64>,
    received: u64,
}

impl FcgiBody {
    /// An empty body.
    pub fn empty() -> FcgiBody {
        FcgiBody::default()
    }

    /// A body of one chunk (used for error responses).
    pub fn full(data: impl Into<Bytes>) -> FcgiBody {
        let data = data.into();
        FcgiBody {
            kind: if data.is_empty() {
                Kind::Empty
            } else {
                Kind::Full(Some(data))
            },
        }
    }

    /// Wraps another body (a static file, an error page); its errors become
    /// [`ErrorKind::Io`] errors.
    pub fn new<B>(body: B) -> FcgiBody
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        FcgiBody {
            kind: Kind::Boxed(Box::pin(MapErr { inner: body })),
        }
    }

    pub(crate) fn stream(
        exchange: PooledExchange,
        pending: Bytes,
        expected: Option<u64>,
    ) -> FcgiBody {
        FcgiBody {
            kind: Kind::Stream(StreamState {
                exchange: Some(exchange),
                pending: (!pending.is_empty()).then_some(pending),
                expected,
                received: 0,
            }),
        }
    }
}

impl StreamState {
    fn take_data(&mut self, data: Bytes) -> Result<Bytes, Error> {
        self.received += data.len() as u64;
        if self.expected.is_some_and(|e| self.received > e) {
            return Err(self.mismatch());
        }
        Ok(data)
    }

    fn mismatch(&mut self) -> Error {
        let unfinished = self.exchange.take().is_some();
        Error::msg(
            ErrorKind::ContentLengthMismatch,
            format!(
                "Content-Length {} but the backend sent {}{} bytes",
                self.expected.unwrap_or_default(),
                if unfinished { "at least " } else { "" },
                self.received
            ),
        )
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        if let Some(data) = self.pending.take() {
            return Poll::Ready(Some(self.take_data(data)));
        }
        let Some(exchange) = &mut self.exchange else {
            return Poll::Ready(None);
        };
        match exchange.poll_event(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Event::Stdout(data))) => Poll::Ready(Some(self.take_data(data))),
            Poll::Ready(Ok(Event::End(end))) => {
                let Some(exchange) = self.exchange.take() else {
                    return Poll::Ready(None);
                };
                if self.expected.is_some_and(|e| self.received != e) {
                    return Poll::Ready(Some(Err(self.mismatch())));
                }
                if end.protocol_status != ProtocolStatus::RequestComplete {
                    // Rejection statuses only make sense before any output.
                    tracing::warn!(status = ?end.protocol_status, "FastCGI request ended with a rejection status after its output");
                }
                if end.app_status != 0 {
                    tracing::debug!(
                        app_status = end.app_status,
                        "FastCGI application exit status"
                    );
                }
                // Dropping the cleanly ended exchange returns its connection to the pool.
                drop(exchange);
                Poll::Ready(None)
            }
            Poll::Ready(Err(err)) => {
                self.exchange = None;
                tracing::warn!(
                    error = %err,
                    bytes_sent = self.received,
                    "FastCGI response body failed; aborting the response"
                );
                Poll::Ready(Some(Err(err)))
            }
        }
    }
}

impl Drop for StreamState {
    /// hyper's HTTP/1 server stops polling a body (and drops it) as soon as it has written
    /// Content-Length bytes, so a backend response with a Content-Length is normally
    /// dropped with END_REQUEST still unread, which used to close a good keep-alive
    /// connection after every such response. When the client got the whole body, read the
    /// backend's last records in the background and pool the connection; otherwise (the
    /// client went away mid-body, or the body is not length-delimited) close it at once.
    fn drop(&mut self) {
        let Some(exchange) = self.exchange.take() else {
            return;
        };
        if self.pending.is_some() || self.expected != Some(self.received) {
            return;
        }
        // Usually the STDOUT terminator and END_REQUEST came in the same read as the last
        // body bytes and are already buffered: finish here, without a task.
        let mut exchange = exchange;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match exchange.poll_event(&mut cx) {
            Poll::Ready(Ok(Event::End(_))) => return, // the connection goes back on drop
            Poll::Ready(_) => return, // more output than announced, or an error: close
            Poll::Pending => {}
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(finish_after_full_body(exchange));
        }
    }
}

/// How long a response whose body was delivered whole waits for END_REQUEST before its
/// connection is closed instead of pooled. Backends send it right after the last STDOUT
/// record; this only bounds one that keeps running after its output.
const FINISH_GRACE: Duration = Duration::from_secs(1);

/// Reads what follows a complete length-delimited body (the STDOUT terminator, STDERR,
/// END_REQUEST) and returns the connection to the pool if the exchange ended cleanly.
async fn finish_after_full_body(mut exchange: PooledExchange) {
    let next = tokio::time::timeout(FINISH_GRACE, poll_fn(|cx| exchange.poll_event(cx))).await;
    match next {
        Ok(Ok(Event::End(_))) => {} // the connection goes back when `exchange` drops
        Ok(Ok(Event::Stdout(_))) => {
            tracing::debug!(
                "the backend sent more than its Content-Length; closing the connection"
            );
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "finishing a delivered FastCGI response failed");
        }
        Err(_) => {
            tracing::debug!("no END_REQUEST after a delivered response; closing the connection");
        }
    }
}

impl Body for FcgiBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream(state) => state
                .poll(cx)
                .map(|item| item.map(|result| result.map(Frame::data))),
            Kind::Boxed(body) => body
                .as_mut()
                .poll_frame(cx)
                .map(|item| item.map(|result| result.map_err(|e| Error::with(ErrorKind::Io, e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(data) => data.is_none(),
            Kind::Stream(state) => state.exchange.is_none() && state.pending.is_none(),
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Stream(state) => match state.expected {
                Some(e) => SizeHint::with_exact(e.saturating_sub(state.received)),
                None => SizeHint::default(),
            },
            Kind::Boxed(body) => body.size_hint(),
        }
    }
}

impl fmt::Debug for FcgiBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("FcgiBody::Empty"),
            Kind::Full(data) => f
                .debug_tuple("FcgiBody::Full")
                .field(&data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream(state) => f
                .debug_struct("FcgiBody::Stream")
                .field("received", &state.received)
                .field("expected", &state.expected)
                .field("open", &state.exchange.is_some())
                .finish(),
            Kind::Boxed(_) => f.write_str("FcgiBody::Boxed"),
        }
    }
}

pin_project_lite::pin_project! {
    /// Boxes another body's errors.
    struct MapErr<B> {
        #[pin]
        inner: B,
    }
}

impl<B> Body for MapErr<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project()
            .inner
            .poll_frame(cx)
            .map(|item| item.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
