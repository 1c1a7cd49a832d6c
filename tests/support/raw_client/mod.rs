//! A small blocking FastCGI client built on `tower_fastcgi::proto`, to talk to the real
//! backends without going through `FcgiService`.
//!
//! It writes STDIN from a second thread while it reads the response, so a backend that
//! echoes while it is still reading (flup) cannot deadlock it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tower_fastcgi::proto::{
    BeginRequest, Decoder, EndRequest, NULL_REQUEST_ID, ParamsEncoder, ProtocolStatus, Record,
    RecordType, Role, encode_stream, encode_stream_chunk,
};

mod messages;

pub use messages::{Params, Response};

use super::backends::Addr;

/// Read and write timeout of new connections: a test never hangs longer than this on I/O.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a complete response waits for the STDIN writer thread to finish before the
/// writer counts as blocked (a loaded CI machine may not schedule it at once).
const WRITER_GRACE: Duration = Duration::from_secs(2);

/// A TCP or Unix stream.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn connect(addr: &Addr) -> io::Result<Stream> {
        let stream = match addr {
            Addr::Tcp(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        stream.set_timeouts(Some(DEFAULT_TIMEOUT))?;
        Ok(stream)
    }

    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    /// Read and write timeouts (`None`: block forever).
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// A connection to a backend.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    decoder: Decoder,
    buf: BytesMut,
    /// Set once the connection is in an unknown state (an interrupted write or read).
    broken: bool,
}

impl Conn {
    pub fn connect(addr: &Addr) -> io::Result<Conn> {
        Ok(Conn {
            stream: Stream::connect(addr)?,
            decoder: Decoder::new(),
            buf: BytesMut::with_capacity(64 * 1024),
            broken: false,
        })
    }

    /// Read and write timeouts (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_timeouts(timeout)
    }

    /// The underlying stream, e.g. to shut it down.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Whether an earlier request left the connection in an unknown state.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// One Responder request with FCGI_KEEP_CONN and request id 1.
    pub fn request(&mut self, params: &Params, stdin: &[u8]) -> io::Result<Response> {
        self.request_with(1, true, params, stdin)
    }

    /// One Responder request: BEGIN_REQUEST, PARAMS, STDIN (written by a second thread
    /// while this one reads), then records until this request's END_REQUEST.
    pub fn request_with(
        &mut self,
        request_id: u16,
        keep_conn: bool,
        params: &Params,
        stdin: &[u8],
    ) -> io::Result<Response> {
        let mut head = BytesMut::new();
        Record::BeginRequest {
            request_id,
            body: BeginRequest {
                role: Role::Responder,
                keep_conn,
            },
        }
        .encode(&mut head);
        let mut encoder = ParamsEncoder::new(&mut head, request_id);
        for (name, value) in params.iter() {
            encoder
                .push(name, value)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        }
        encoder.finish();

        let mut writer = self.stream.try_clone()?;
        let result = thread::scope(|scope| {
            let written = scope.spawn(move || write_request(&mut writer, &head, request_id, stdin));
            let response = self.read_response(request_id);
            // The writer thread may still be returning from its last write when the
            // response is complete; only a writer still busy after a grace period is
            // blocked on an application that stopped reading STDIN.
            let grace = Instant::now() + WRITER_GRACE;
            while !written.is_finished() && Instant::now() < grace {
                thread::sleep(Duration::from_millis(1));
            }
            if response.is_ok() && !written.is_finished() {
                // The application answered without reading all of STDIN: unblock the writer.
                let _ = self.stream.shutdown(Shutdown::Write);
                self.broken = true;
            }
            let written = written
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the STDIN writer thread panicked")));
            (response, written)
        });
        match result {
            (Ok(mut response), written) => {
                if let Err(e) = written {
                    self.broken = true;
                    response.stdin_error = Some(e);
                }
                Ok(response)
            }
            (Err(read_error), Err(write_error)) => {
                self.broken = true;
                Err(io::Error::new(
                    read_error.kind(),
                    format!("{read_error} (and writing the request failed: {write_error})"),
                ))
            }
            (Err(read_error), Ok(())) => {
                self.broken = true;
                Err(read_error)
            }
        }
    }

    /// FCGI_GET_VALUES for `names`; returns the pairs of the GET_VALUES_RESULT.
    pub fn get_values(&mut self, names: &[&str]) -> io::Result<Vec<(String, String)>> {
        let mut query = BytesMut::new();
        let mut encoder =
            ParamsEncoder::with_type(&mut query, RecordType::GetValues, NULL_REQUEST_ID);
        for name in names {
            encoder
                .push(name.as_bytes(), b"")
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        }
        encoder.finish_record();
        self.stream.write_all(&query)?;
        // One record answers the query; anything else is an error.
        match self.read_record()? {
            Some(Record::GetValuesResult { data }) => {
                let pairs = tower_fastcgi::proto::PairIter::new(&data)
                    .map(|pair| {
                        pair.map(|(n, v)| {
                            (
                                String::from_utf8_lossy(n).into_owned(),
                                String::from_utf8_lossy(v).into_owned(),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                Ok(pairs)
            }
            Some(other) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected GET_VALUES_RESULT, got {other:?}"),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before GET_VALUES_RESULT",
            )),
        }
    }

    /// Writes raw bytes (hand-made records for protocol tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// The next record, or `None` at a clean end of the connection.
    pub fn read_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(record)) => return Ok(Some(record)),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                if self.buf.is_empty() && self.decoder.is_between_records() {
                    return Ok(None);
                }
                self.broken = true;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed inside a record ({} bytes pending)",
                        self.buf.len()
                    ),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn read_response(&mut self, request_id: u16) -> io::Result<Response> {
        let mut response = Response {
            stdout: Vec::new(),
            stderr: Vec::new(),
            end: EndRequest {
                app_status: 0,
                protocol_status: ProtocolStatus::RequestComplete,
            },
            stdin_error: None,
            other_records: Vec::new(),
        };
        loop {
            let record = self.read_record()?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before END_REQUEST ({} stdout bytes, stderr {:?})",
                        response.stdout.len(),
                        String::from_utf8_lossy(&response.stderr)
                    ),
                )
            })?;
            if record.request_id() != request_id && record.request_id() != NULL_REQUEST_ID {
                self.broken = true;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "record for request {} while waiting for {request_id}: {record:?}",
                        record.request_id()
                    ),
                ));
            }
            match record {
                Record::Stdout { data, .. } => response.stdout.extend_from_slice(&data),
                Record::Stderr { data, .. } => response.stderr.extend_from_slice(&data),
                Record::EndRequest { body, .. } => {
                    response.end = body;
                    return Ok(response);
                }
                other => response.other_records.push(other),
            }
        }
    }
}

/// BEGIN_REQUEST and PARAMS, then STDIN in records of at most 64 KiB, then the empty STDIN.
fn write_request(
    stream: &mut Stream,
    head: &[u8],
    request_id: u16,
    stdin: &[u8],
) -> io::Result<()> {
    stream.write_all(head)?;
    let mut rest = stdin;
    let mut out = BytesMut::with_capacity(256 * 1024);
    while !rest.is_empty() {
        // Batch a few records per write.
        while !rest.is_empty() && out.len() < 192 * 1024 {
            let n = encode_stream_chunk(&mut out, RecordType::Stdin, request_id, rest);
            rest = &rest[n..];
        }
        stream.write_all(&out)?;
        out.clear();
    }
    encode_stream(&mut out, RecordType::Stdin, request_id, b"");
    stream.write_all(&out)?;
    stream.flush()
}

/// One request on a new connection without FCGI_KEEP_CONN: request id 1.
pub fn request(addr: &Addr, params: &Params, stdin: &[u8]) -> io::Result<Response> {
    let mut conn = Conn::connect(addr)?;
    conn.request_with(1, false, params, stdin)
}
