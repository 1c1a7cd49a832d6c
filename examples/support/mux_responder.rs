//! The multiplexing flavour of `responder.rs` (which must be included next to it as
//! `mod responder`): several request ids served at once on one connection. The
//! benchmark's `bench_responder --mpx N` runs it; `tests/mux_backends.rs` includes that
//! example as a module and checks it at the record level.
//!
//! Per connection, one reader task decodes records and routes them by request id, and one
//! writer task owns the socket's write half: every request's handler runs in a task of its
//! own and hands whole records to the writer through a bounded channel, so responses
//! interleave record by record and a big body cannot starve the others for long. The
//! writer coalesces what is queued into one vectored write.
//!
//! FCGI_GET_VALUES is answered with `FCGI_MPXS_CONNS=1`, `FCGI_MAX_REQS` and (if set)
//! `FCGI_MAX_CONNS`. FCGI_ABORT_REQUEST for a request still being received ends it at
//! once (END_REQUEST, REQUEST_COMPLETE); for a running one it stops the handler at its
//! next write, which then ends it the same way: exactly one END_REQUEST per request.
//! STDIN is counted and discarded (the handler sees its length).
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tower_fastcgi::proto::{
    EndRequest, PairIter, ParamsCollector, ProtocolStatus, Record, RecordType, encode_stream,
    values,
};

// `super`, not `crate`: tests include the benchmark responder as a module of their own.
use super::responder::{self, BoxWrite, Listen, RecordReader, Stats};

/// Records queued per connection before a handler (or the reader) waits for the writer.
const QUEUE: usize = 256;
/// The most bytes one vectored write gathers.
const GATHER: usize = 256 * 1024;
/// A handler's STDOUT is handed to the writer in pieces of about this size.
const PIECE: usize = 64 * 1024;
/// Limit on one request's PARAMS stream.
const MAX_PARAMS: usize = 1 << 20;

/// What the connection advertises.
#[derive(Debug, Clone, Copy)]
pub struct MuxConfig {
    /// `FCGI_MAX_REQS`: concurrent requests per connection (not enforced, advertised).
    pub max_reqs: u32,
    /// `FCGI_MAX_CONNS`, answered only when set.
    pub max_conns: Option<u32>,
}

/// Counters beyond [`Stats`]: the most requests open at once on one connection.
#[derive(Debug, Default)]
pub struct MuxStats {
    pub peak_streams: AtomicUsize,
    pub aborts: AtomicUsize,
}

/// One request, complete (PARAMS and STDIN received).
pub struct MuxRequest {
    pub connection: usize,
    pub request_id: u16,
    pub params: HashMap<String, String>,
    pub stdin_len: u64,
}

impl MuxRequest {
    /// A parameter, or "".
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }
}

/// What a handler is: it writes its answer's STDOUT through the writer; END_REQUEST is
/// sent for it when it returns (app status 0, or 1 after an error).
pub type MuxHandler = for<'a> fn(
    &'a MuxRequest,
    &'a mut MuxWriter,
) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

enum Out {
    Records(Bytes),
    /// Shut the write half down after everything queued before it.
    Close,
}

/// STDOUT of one request, in records, to the connection's writer.
pub struct MuxWriter {
    tx: mpsc::Sender<Out>,
    buf: BytesMut,
    request_id: u16,
    aborted: Arc<AtomicBool>,
}

impl MuxWriter {
    /// Queues STDOUT bytes; fails once the web server aborted the request.
    pub async fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        if self.aborted.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "FCGI_ABORT_REQUEST",
            ));
        }
        if !data.is_empty() {
            encode_stream(&mut self.buf, RecordType::Stdout, self.request_id, data);
        }
        if self.buf.len() >= PIECE {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> io::Result<()> {
        let records = self.buf.split().freeze();
        self.tx
            .send(Out::Records(records))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
    }

    /// The end of STDOUT and END_REQUEST (queued with what is still buffered).
    async fn end(&mut self, app_status: u32) -> io::Result<()> {
        encode_stream(&mut self.buf, RecordType::Stdout, self.request_id, b"");
        end_request(&mut self.buf, self.request_id, app_status);
        self.send().await
    }
}

fn end_request(buf: &mut BytesMut, request_id: u16, app_status: u32) {
    Record::EndRequest {
        request_id,
        body: EndRequest {
            app_status,
            protocol_status: ProtocolStatus::RequestComplete,
        },
    }
    .encode(buf);
}

/// Accepts connections forever, serving every request of each with `handler`.
pub async fn serve(
    listen: Listen,
    handler: MuxHandler,
    config: MuxConfig,
    stats: Arc<Stats>,
    mux: Arc<MuxStats>,
) {
    loop {
        let Ok((read, write)) = responder::accept(&listen).await else {
            continue;
        };
        let serial = stats.connections.fetch_add(1, Ordering::SeqCst) + 1;
        stats.open.fetch_add(1, Ordering::SeqCst);
        let (stats, mux) = (Arc::clone(&stats), Arc::clone(&mux));
        tokio::spawn(async move {
            let (tx, rx) = mpsc::channel(QUEUE);
            let writer = tokio::spawn(write_loop(write, rx));
            let conn = Conn {
                serial,
                handler,
                config,
                tx,
                stats: Arc::clone(&stats),
                mux,
                open: Arc::new(AtomicUsize::new(0)),
            };
            let _ = conn.read_loop(RecordReader::new(read)).await;
            // The reader's sender is gone now; the writer ends after the last handler's.
            let _ = writer.await;
            stats.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Where one request id stands, as the reader sees it.
enum Slot {
    Params(ParamsCollector, bool),
    Stdin(HashMap<String, String>, u64, bool),
    /// Handed to a handler task; the flag tells it to stop.
    Running(Arc<AtomicBool>),
}

struct Conn {
    serial: usize,
    handler: MuxHandler,
    config: MuxConfig,
    tx: mpsc::Sender<Out>,
    stats: Arc<Stats>,
    mux: Arc<MuxStats>,
    /// Requests begun and not yet ended on this connection.
    open: Arc<AtomicUsize>,
}

impl Conn {
    async fn read_loop(self, mut reader: RecordReader) -> io::Result<()> {
        let mut slots: HashMap<u16, Slot> = HashMap::new();
        while let Some(record) = reader.next().await? {
            match record {
                Record::GetValues { data } => {
                    let config = self.config;
                    let answer = responder::values_result(&data, |name| match name {
                        n if n == values::MPXS_CONNS.as_bytes() => Some(b"1".to_vec()),
                        n if n == values::MAX_REQS.as_bytes() => {
                            Some(config.max_reqs.to_string().into_bytes())
                        }
                        n if n == values::MAX_CONNS.as_bytes() => {
                            config.max_conns.map(|c| c.to_string().into_bytes())
                        }
                        _ => None,
                    });
                    self.queue(answer.freeze()).await?;
                }
                Record::BeginRequest { request_id, body } => {
                    let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
                    self.mux.peak_streams.fetch_max(now, Ordering::SeqCst);
                    let params = ParamsCollector::new(MAX_PARAMS);
                    slots.insert(request_id, Slot::Params(params, body.keep_conn));
                }
                Record::Params { request_id, data } => {
                    let Some(Slot::Params(params, keep)) = slots.get_mut(&request_id) else {
                        continue;
                    };
                    if !data.is_empty() {
                        params
                            .push(&data)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        continue;
                    }
                    let keep = *keep;
                    let Some(Slot::Params(params, _)) = slots.remove(&request_id) else {
                        continue;
                    };
                    let params = parse(&params.finish())?;
                    slots.insert(request_id, Slot::Stdin(params, 0, keep));
                }
                Record::Stdin { request_id, data } => {
                    let Some(Slot::Stdin(_, len, _)) = slots.get_mut(&request_id) else {
                        continue;
                    };
                    if !data.is_empty() {
                        *len += data.len() as u64;
                        continue;
                    }
                    let Some(Slot::Stdin(params, len, keep)) = slots.remove(&request_id) else {
                        continue;
                    };
                    let stop = self.dispatch(request_id, params, len, keep);
                    slots.insert(request_id, Slot::Running(stop));
                }
                Record::AbortRequest { request_id } => match slots.remove(&request_id) {
                    Some(Slot::Running(stop)) => {
                        // The handler ends the request at its next write (or has already).
                        stop.store(true, Ordering::SeqCst);
                        self.mux.aborts.fetch_add(1, Ordering::SeqCst);
                    }
                    Some(Slot::Params(..) | Slot::Stdin(..)) => {
                        self.mux.aborts.fetch_add(1, Ordering::SeqCst);
                        self.open.fetch_sub(1, Ordering::SeqCst);
                        let mut buf = BytesMut::new();
                        end_request(&mut buf, request_id, 0);
                        self.queue(buf.freeze()).await?;
                    }
                    None => {}
                },
                _ => {}
            }
        }
        Ok(())
    }

    async fn queue(&self, records: Bytes) -> io::Result<()> {
        self.tx
            .send(Out::Records(records))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "writer gone"))
    }

    /// Starts the handler task of a complete request; returns its stop flag.
    fn dispatch(
        &self,
        request_id: u16,
        params: HashMap<String, String>,
        stdin_len: u64,
        keep_conn: bool,
    ) -> Arc<AtomicBool> {
        self.stats.requests.fetch_add(1, Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let request = MuxRequest {
            connection: self.serial,
            request_id,
            params,
            stdin_len,
        };
        let mut writer = MuxWriter {
            tx: self.tx.clone(),
            buf: BytesMut::new(),
            request_id,
            aborted: Arc::clone(&stop),
        };
        let (handler, open) = (self.handler, Arc::clone(&self.open));
        tokio::spawn(async move {
            let status = match handler(&request, &mut writer).await {
                Ok(()) => 0,
                Err(_) => 1,
            };
            // Whatever the handler buffered goes first; an aborted request ends without it.
            if writer.aborted.load(Ordering::Relaxed) {
                writer.buf.clear();
            }
            let _ = writer.end(status).await;
            open.fetch_sub(1, Ordering::SeqCst);
            if !keep_conn {
                let _ = writer.tx.send(Out::Close).await;
            }
        });
        stop
    }
}

fn parse(params: &[u8]) -> io::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for pair in PairIter::new(params) {
        let (n, v) = pair.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        map.insert(
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        );
    }
    Ok(map)
}

/// Writes what the connection's tasks queue, coalescing whatever is waiting into one
/// vectored write, until every sender is gone or a `Close` comes.
async fn write_loop(mut out: BoxWrite, mut rx: mpsc::Receiver<Out>) {
    let mut batch: Vec<Bytes> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut close = false;
        let mut size = 0;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Out::Records(bytes) => {
                    size += bytes.len();
                    batch.push(bytes);
                }
                Out::Close => {
                    close = true;
                    break;
                }
            }
            if size < GATHER {
                next = rx.try_recv().ok();
            }
        }
        if write_all_vectored(&mut out, &batch).await.is_err() {
            return;
        }
        batch.clear();
        if close {
            let _ = out.shutdown().await;
            return;
        }
    }
    let _ = out.shutdown().await;
}

async fn write_all_vectored(out: &mut BoxWrite, pieces: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = out.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    out.flush().await
}
