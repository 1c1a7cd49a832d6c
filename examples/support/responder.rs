//! A small FastCGI *application* server built on `tower_fastcgi::proto`.
//!
//! It is the other side of the wire: it accepts connections, reads BEGIN_REQUEST and
//! PARAMS, and hands each request to an async handler that reads STDIN and writes
//! records itself. The quickstart example embeds it as its demo app, the benchmark uses it
//! as a backend that costs almost nothing, and the fault-injection tests use its raw
//! writer to misbehave on purpose (garbage, stalls, crashes).
//!
//! Included with `#[path = ".../examples/support/responder.rs"] mod responder;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tower_fastcgi::proto::{
    Decoder, EndRequest, PairIter, ParamsCollector, ParamsEncoder, ProtocolStatus, Record,
    RecordType, Role, encode_stream, values,
};

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Limit on one request's PARAMS stream.
const MAX_PARAMS: usize = 1 << 20;

/// One request as the application sees it.
pub struct Request {
    /// Serial number of the connection (1 for the first accepted).
    pub connection: usize,
    /// Requests served earlier on this connection.
    pub nth_on_connection: usize,
    pub request_id: u16,
    pub role: Role,
    pub keep_conn: bool,
    pub params: HashMap<String, String>,
    reader: RecordReader,
    stdin_done: bool,
}

impl Request {
    /// A parameter, or "".
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }

    /// The next piece of STDIN, `None` at its end.
    pub async fn read_stdin(&mut self) -> io::Result<Option<Bytes>> {
        while !self.stdin_done {
            match self.reader.next().await? {
                Some(Record::Stdin { request_id, data }) if request_id == self.request_id => {
                    if data.is_empty() {
                        self.stdin_done = true;
                        return Ok(None);
                    }
                    return Ok(Some(data));
                }
                Some(Record::AbortRequest { .. }) => {
                    self.stdin_done = true;
                    return Ok(None);
                }
                Some(_) => continue,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "web server closed the connection during STDIN",
                    ));
                }
            }
        }
        Ok(None)
    }

    /// Reads and returns the whole of STDIN.
    pub async fn read_all_stdin(&mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(chunk) = self.read_stdin().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// Waits until the web server closes the connection (reading and discarding records).
    pub async fn wait_for_close(&mut self) {
        while let Ok(Some(_)) = self.reader.next().await {}
    }

    /// Discards STDIN; returns its length.
    pub async fn drain_stdin(&mut self) -> io::Result<u64> {
        let mut n = 0;
        while let Some(chunk) = self.read_stdin().await? {
            n += chunk.len() as u64;
        }
        Ok(n)
    }
}

/// Writes records for one request, buffered; `flush` sends them.
pub struct Writer {
    out: BoxWrite,
    buf: BytesMut,
    request_id: u16,
}

impl Writer {
    /// Queues STDOUT bytes (split into records as needed); flushes when the buffer is big.
    pub async fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream(RecordType::Stdout, data).await
    }

    /// Queues STDERR bytes.
    pub async fn stderr(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream(RecordType::Stderr, data).await
    }

    async fn stream(&mut self, ty: RecordType, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        encode_stream(&mut self.buf, ty, self.request_id, data);
        if self.buf.len() >= 64 * 1024 {
            self.flush().await?;
        }
        Ok(())
    }

    /// Ends STDOUT and the request with END_REQUEST, and flushes.
    pub async fn end(&mut self, app_status: u32) -> io::Result<()> {
        self.end_with(app_status, ProtocolStatus::RequestComplete)
            .await
    }

    /// Ends the request with a given protocol status (no STDOUT terminator for rejections).
    pub async fn end_with(&mut self, app_status: u32, status: ProtocolStatus) -> io::Result<()> {
        if status == ProtocolStatus::RequestComplete {
            encode_stream(&mut self.buf, RecordType::Stdout, self.request_id, b"");
        }
        Record::EndRequest {
            request_id: self.request_id,
            body: EndRequest {
                app_status,
                protocol_status: status,
            },
        }
        .encode(&mut self.buf);
        self.flush().await
    }

    /// Queues raw bytes, to break the protocol on purpose.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.out.flush().await
    }

    pub fn request_id(&self) -> u16 {
        self.request_id
    }
}

/// What the handler wants done with the connection afterwards.
pub enum After {
    /// Serve the next request if the web server asked to keep the connection.
    KeepIfAsked,
    /// Close the connection now (a crash, from the web server's point of view).
    Close,
}

/// Counters for tests.
#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    pub open: AtomicUsize,
}

/// Where the responder listens.
pub enum Listen {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// The next connection, split (TCP with TCP_NODELAY).
pub async fn accept(listen: &Listen) -> io::Result<(BoxRead, BoxWrite)> {
    Ok(match listen {
        Listen::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            (Box::new(r), Box::new(w))
        }
        Listen::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            let (r, w) = s.into_split();
            (Box::new(r), Box::new(w))
        }
    })
}

/// The FCGI_GET_VALUES_RESULT record for the query `data`: each asked name that `value`
/// knows, in the order asked (unknown names are left out, as the specification says).
pub fn values_result(data: &[u8], value: impl Fn(&[u8]) -> Option<Vec<u8>>) -> BytesMut {
    let mut buf = BytesMut::new();
    let mut enc = ParamsEncoder::with_type(&mut buf, RecordType::GetValuesResult, 0);
    for pair in PairIter::new(data) {
        let Ok((name, _)) = pair else { break };
        if let Some(v) = value(name) {
            let _ = enc.push(name, &v);
        }
    }
    enc.finish_record();
    buf
}

/// Accepts connections forever, serving each request with `handler`.
pub async fn serve<H, F>(listen: Listen, handler: H, stats: Arc<Stats>)
where
    H: Fn(Request, Writer) -> F + Send + Sync + 'static,
    F: Future<Output = io::Result<(Request, Writer, After)>> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((read, write)) = accept(&listen).await else {
            continue;
        };
        let serial = stats.connections.fetch_add(1, Ordering::SeqCst) + 1;
        stats.open.fetch_add(1, Ordering::SeqCst);
        let handler = Arc::clone(&handler);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _ = connection(serial, read, write, &*handler, &stats).await;
            stats.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn connection<H, F>(
    serial: usize,
    read: BoxRead,
    write: BoxWrite,
    handler: &H,
    stats: &Stats,
) -> io::Result<()>
where
    H: Fn(Request, Writer) -> F,
    F: Future<Output = io::Result<(Request, Writer, After)>>,
{
    let mut reader = RecordReader::new(read);
    let mut out = Some(write);
    let mut nth = 0;
    loop {
        // Wait for BEGIN_REQUEST, answering management records on the way.
        let (request_id, role, keep_conn) = loop {
            match reader.next().await? {
                None => return Ok(()),
                Some(Record::BeginRequest { request_id, body }) => {
                    break (request_id, body.role, body.keep_conn);
                }
                Some(Record::GetValues { data }) => {
                    let buf = values_result(&data, |name| {
                        let value: &[u8] = match name {
                            n if n == values::MPXS_CONNS.as_bytes() => b"0",
                            n if n == values::MAX_CONNS.as_bytes() => b"100",
                            n if n == values::MAX_REQS.as_bytes() => b"100",
                            _ => return None,
                        };
                        Some(value.to_vec())
                    });
                    if let Some(w) = out.as_mut() {
                        w.write_all(&buf).await?;
                    }
                }
                Some(_) => {}
            }
        };
        let mut params = ParamsCollector::new(MAX_PARAMS);
        loop {
            match reader.next().await? {
                Some(Record::Params {
                    request_id: id,
                    data,
                }) if id == request_id => {
                    if data.is_empty() {
                        break;
                    }
                    params
                        .push(&data)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                Some(_) => {}
                None => return Ok(()),
            }
        }
        let params = params.finish();
        let mut map = HashMap::new();
        for pair in PairIter::new(&params) {
            let (n, v) = pair.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            map.insert(
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            );
        }
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let req = Request {
            connection: serial,
            nth_on_connection: nth,
            request_id,
            role,
            keep_conn,
            params: map,
            reader,
            stdin_done: false,
        };
        let writer = Writer {
            out: out.take().expect("writer present between requests"),
            buf: BytesMut::new(),
            request_id,
        };
        // The handler owns the request (with its STDIN reader) and the writer, and hands
        // both back; STDIN it did not read is drained before the next request.
        let (mut req, writer, after) = handler(req, writer).await?;
        if matches!(after, After::Close) || !keep_conn {
            let mut w = writer.out;
            let _ = w.shutdown().await;
            // Read until the web server closes, so unread input does not turn our close
            // into a reset that destroys the response in flight.
            let _ = req.drain_stdin().await;
            return Ok(());
        }
        req.drain_stdin().await?;
        out = Some(writer.out);
        reader = req.reader;
        nth += 1;
    }
}

/// Reads records from the read half.
pub struct RecordReader {
    input: Option<BoxRead>,
    buf: BytesMut,
    decoder: Decoder,
}

impl RecordReader {
    pub fn new(input: BoxRead) -> RecordReader {
        RecordReader {
            input: Some(input),
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: Decoder::new(),
        }
    }

    /// The next record, `None` at the end of the input.
    pub async fn next(&mut self) -> io::Result<Option<Record>> {
        loop {
            if let Some(rec) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                return Ok(Some(rec));
            }
            let Some(input) = self.input.as_mut() else {
                return Ok(None);
            };
            self.buf.reserve(64 * 1024);
            if input.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}
