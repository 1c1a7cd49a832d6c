//! Request bodies: where STDIN comes from, and the policy for bodies of unknown length.
//!
//! php-fpm and php-cgi read exactly CONTENT_LENGTH bytes and silently ignore a body sent
//! without it, so a body of unknown length (chunked HTTP/1.1, HTTP/2 without
//! content-length) is by default spooled first, in memory up to a limit and then in an
//! unlinked temporary file up to a maximum, so that CONTENT_LENGTH is exact. Bodies of
//! known length stream straight through, except small ones which are read up front so
//! that the whole request goes out in one write and can be replayed on a stale connection.

use std::collections::VecDeque;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncSeek, AsyncSeekExt, AsyncWriteExt, ReadBuf};

use crate::error::{BoxError, Error, ErrorKind};

/// A type-erased request body.
pub(crate) type BoxBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

/// What to do with a request body whose length is not known in advance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownLengthBody {
    /// Read it first (memory up to `memory` bytes, then a temporary file), then send it
    /// with an exact CONTENT_LENGTH. Over the service's body limit: 413. The default,
    /// as nginx does, because php-fpm ignores bodies without CONTENT_LENGTH.
    Spool {
        /// Bytes kept in memory before spilling to a temporary file.
        memory: usize,
        /// Directory for the temporary file (the system default when `None`).
        dir: Option<PathBuf>,
    },
    /// Refuse it with 411 Length Required (Caddy's behaviour).
    Reject,
    /// Stream it without CONTENT_LENGTH, for backends that read STDIN to its end
    /// (fcgiwrap, flup, Go); php-fpm would see an empty body.
    Stream,
}

impl Default for UnknownLengthBody {
    /// Spool, [`SPOOL_MEMORY`](crate::defaults::SPOOL_MEMORY) bytes in memory, then a
    /// temporary file in the system's temporary directory.
    fn default() -> UnknownLengthBody {
        UnknownLengthBody::Spool {
            memory: crate::defaults::SPOOL_MEMORY,
            dir: None,
        }
    }
}

/// Body settings (the builder fills them from [`crate::defaults`]).
#[derive(Debug, Clone)]
pub(crate) struct BodyConfig {
    pub(crate) unknown_length: UnknownLengthBody,
    /// Largest accepted body; larger is 413.
    pub(crate) max_len: u64,
    /// Known-length bodies up to this size are read before connecting.
    pub(crate) read_ahead: usize,
}

/// The source of FCGI_STDIN for one exchange.
pub(crate) enum Upload {
    /// No body.
    Empty,
    /// Chunks in memory.
    Chunks { chunks: Vec<Bytes>, next: usize },
    /// A spooled body in a temporary file. Boxed: tokio's `File` is ~100 bytes, and an
    /// `Upload` (two of them in every request, body and a Filter's data) is moved
    /// through every layer of the send path, spooled or not.
    File {
        file: Box<tokio::fs::File>,
        len: u64,
        pos: u64,
        rewinding: bool,
    },
    /// The client's body, streamed as it arrives.
    Stream {
        body: BoxBody,
        expected: Option<u64>,
        sent: u64,
    },
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upload::Empty => f.write_str("Upload::Empty"),
            Upload::Chunks { chunks, next } => write!(f, "Upload::Chunks({next}/{})", chunks.len()),
            Upload::File { len, pos, .. } => write!(f, "Upload::File({pos}/{len})"),
            Upload::Stream { expected, sent, .. } => {
                write!(f, "Upload::Stream({sent}/{expected:?})")
            }
        }
    }
}

/// Bytes of the spooled file read per STDIN chunk.
const FILE_CHUNK: usize = 64 * 1024;

impl Upload {
    /// The next piece of body, `None` at the end.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, Error>> {
        match self {
            Upload::Empty => Poll::Ready(Ok(None)),
            Upload::Chunks { chunks, next } => {
                let chunk = chunks.get(*next).cloned();
                *next += 1;
                Poll::Ready(Ok(chunk))
            }
            Upload::File {
                file,
                len,
                pos,
                rewinding,
            } => {
                if *rewinding {
                    ready!(Pin::new(&mut **file).poll_complete(cx)).map_err(spool_error)?;
                    *rewinding = false;
                }
                if *pos >= *len {
                    return Poll::Ready(Ok(None));
                }
                let want = FILE_CHUNK.min((*len - *pos) as usize);
                let mut buf = BytesMut::zeroed(want);
                let mut read_buf = ReadBuf::new(&mut buf[..]);
                ready!(Pin::new(&mut **file).poll_read(cx, &mut read_buf)).map_err(spool_error)?;
                let n = read_buf.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(Error::msg(
                        ErrorKind::Spool,
                        "spooled request body file is shorter than written",
                    )));
                }
                buf.truncate(n);
                *pos += n as u64;
                Poll::Ready(Ok(Some(buf.freeze())))
            }
            Upload::Stream {
                body,
                expected,
                sent,
            } => loop {
                let Some(frame) = ready!(body.as_mut().poll_frame(cx)) else {
                    if expected.is_some_and(|e| *sent != e) {
                        return Poll::Ready(Err(Error::msg(
                            ErrorKind::RequestBody,
                            format!(
                                "request body ended after {sent} of {} bytes",
                                expected.unwrap_or_default()
                            ),
                        )));
                    }
                    return Poll::Ready(Ok(None));
                };
                let frame = frame.map_err(body_error)?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers cannot travel over FastCGI
                };
                if data.is_empty() {
                    continue;
                }
                *sent += data.len() as u64;
                if expected.is_some_and(|e| *sent > e) {
                    return Poll::Ready(Err(Error::msg(
                        ErrorKind::RequestBody,
                        "request body longer than its declared length",
                    )));
                }
                return Poll::Ready(Ok(Some(data)));
            },
        }
    }

    /// Whether the body can be sent again from the start (everything but a body streamed
    /// straight from the client).
    pub(crate) fn is_replayable(&self) -> bool {
        !matches!(self, Upload::Stream { .. })
    }

    /// Rewinds a replayable body to its start; false when the body cannot be replayed
    /// (a streamed body that already gave up some bytes).
    pub(crate) fn rewind(&mut self) -> bool {
        match self {
            Upload::Empty => true,
            Upload::Chunks { next, .. } => {
                *next = 0;
                true
            }
            Upload::File {
                file,
                pos,
                rewinding,
                ..
            } => {
                if Pin::new(&mut **file)
                    .start_seek(SeekFrom::Start(0))
                    .is_err()
                {
                    return false;
                }
                *pos = 0;
                *rewinding = true;
                true
            }
            Upload::Stream { sent, .. } => *sent == 0,
        }
    }
}

/// A failure reading the client's body: 413 when a length limit cut it off, 400 otherwise.
///
/// tower-http's `RequestBodyLimitLayer` answers 413 itself only when Content-Length
/// announces too much; a chunked body is cut off by `http_body_util::Limited` with a
/// `LengthLimitError`, which axum's own extractors also map to 413. axum wraps body errors
/// (`axum::Error`), so the whole source chain is searched.
fn body_error(err: BoxError) -> Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return Error::with(ErrorKind::RequestBodyTooLarge, err);
        }
        cause = e.source();
    }
    Error::with(ErrorKind::RequestBody, err)
}

fn spool_error(err: std::io::Error) -> Error {
    Error::with(ErrorKind::Spool, err)
}

pin_project_lite::pin_project! {
    /// Adapts any request body to `Bytes` chunks and boxed errors.
    struct MapBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B> Body for MapBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match ready!(self.project().inner.poll_frame(cx)) {
            None => Poll::Ready(None),
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            Some(Ok(frame)) => Poll::Ready(Some(Ok(
                frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
            ))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Turns a request body into an upload and the CONTENT_LENGTH to announce.
///
/// `declares_body` says whether the request carries a body at all (a POST with
/// `Content-Length: 0` does, a GET without one does not), for requests whose body is empty.
pub(crate) async fn prepare<B>(
    body: B,
    declares_body: bool,
    cfg: &BodyConfig,
) -> Result<(Upload, Option<u64>), Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if body.is_end_stream() {
        return Ok((Upload::Empty, declares_body.then_some(0)));
    }
    let exact = body.size_hint().exact();
    let mut body: BoxBody = Box::pin(MapBody { inner: body });
    match exact {
        Some(len) if len > cfg.max_len => Err(too_large(cfg.max_len)),
        Some(0) => Ok((Upload::Empty, declares_body.then_some(0))),
        Some(len) if len <= cfg.read_ahead as u64 => {
            let chunks = read_all(&mut body, len).await?;
            Ok((Upload::Chunks { chunks, next: 0 }, Some(len)))
        }
        Some(len) => Ok((
            Upload::Stream {
                body,
                expected: Some(len),
                sent: 0,
            },
            Some(len),
        )),
        None => match &cfg.unknown_length {
            UnknownLengthBody::Reject => Err(Error::new(ErrorKind::LengthRequired)),
            UnknownLengthBody::Stream => Ok((
                Upload::Stream {
                    body,
                    expected: None,
                    sent: 0,
                },
                None,
            )),
            UnknownLengthBody::Spool { memory, dir } => {
                spool(&mut body, *memory, dir.as_deref(), cfg.max_len).await
            }
        },
    }
}

fn too_large(max: u64) -> Error {
    Error::msg(
        ErrorKind::RequestBodyTooLarge,
        format!("request body larger than {max} bytes"),
    )
}

async fn next_data(body: &mut BoxBody) -> Result<Option<Bytes>, Error> {
    loop {
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        match frame {
            None => return Ok(None),
            Some(Err(err)) => return Err(body_error(err)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.into_data().ok().filter(|d| !d.is_empty()) {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads a small body of known length completely.
async fn read_all(body: &mut BoxBody, len: u64) -> Result<Vec<Bytes>, Error> {
    let mut chunks = Vec::with_capacity(1);
    let mut got = 0u64;
    while let Some(data) = next_data(body).await? {
        got += data.len() as u64;
        if got > len {
            return Err(Error::msg(
                ErrorKind::RequestBody,
                "request body longer than its declared length",
            ));
        }
        chunks.push(data);
    }
    if got != len {
        return Err(Error::msg(
            ErrorKind::RequestBody,
            format!("request body ended after {got} of {len} bytes"),
        ));
    }
    Ok(chunks)
}

/// Reads a body of unknown length into memory, then into an unlinked temporary file.
async fn spool(
    body: &mut BoxBody,
    memory: usize,
    dir: Option<&std::path::Path>,
    max: u64,
) -> Result<(Upload, Option<u64>), Error> {
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total = 0u64;
    let mut file: Option<tokio::fs::File> = None;
    while let Some(data) = next_data(body).await? {
        total += data.len() as u64;
        if total > max {
            return Err(too_large(max));
        }
        let file = match &mut file {
            Some(file) => file,
            None if total <= memory as u64 => {
                chunks.push_back(data);
                continue;
            }
            None => {
                let dir = dir.map(|d| d.to_path_buf());
                let std_file = tokio::task::spawn_blocking(move || match dir {
                    Some(dir) => tempfile::tempfile_in(dir),
                    None => tempfile::tempfile(),
                })
                .await
                .map_err(|e| Error::with(ErrorKind::Spool, e))?
                .map_err(spool_error)?;
                let mut f = tokio::fs::File::from_std(std_file);
                while let Some(chunk) = chunks.pop_front() {
                    f.write_all(&chunk).await.map_err(spool_error)?;
                }
                file.insert(f)
            }
        };
        file.write_all(&data).await.map_err(spool_error)?;
    }
    match file {
        Some(mut f) => {
            f.flush().await.map_err(spool_error)?;
            f.seek(SeekFrom::Start(0)).await.map_err(spool_error)?;
            tracing::debug!(bytes = total, "spooled request body to a temporary file");
            Ok((
                Upload::File {
                    file: Box::new(f),
                    len: total,
                    pos: 0,
                    rewinding: false,
                },
                Some(total),
            ))
        }
        None => Ok((
            Upload::Chunks {
                chunks: chunks.into(),
                next: 0,
            },
            Some(total),
        )),
    }
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
