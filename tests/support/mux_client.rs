//! A blocking raw FastCGI client for several requests at once on one connection, built on
//! [`raw_client::Conn`](super::raw_client::Conn): the caller writes BEGIN_REQUEST, PARAMS,
//! STDIN and ABORT_REQUEST records for any ids in any order, and reads the answers back
//! sorted by id, with the order in which the records arrived kept for assertions.
//!
//! ```ignore
//! let mut conn = MuxConn::connect(go.addr());
//! conn.request(1, &mux_params("GET", "/slow?ms=300&tag=one"), b"");
//! conn.request(2, &mux_params("GET", "/slow?ms=10&tag=two"), b"");
//! let two = conn.wait_end(2);
//! let one = conn.wait_end(1);
//! assert!(conn.position_of_end(2) < conn.position_of_end(1));
//! ```
//!
//! Request bodies are written before answers are read: keep them small (a backend that
//! answers while it reads could otherwise block both sides).

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tower_fastcgi::proto::{
    BeginRequest, EndRequest, NULL_REQUEST_ID, PairIter, ParamsEncoder, ProtocolStatus, Record,
    RecordType, Role, encode_stream,
};

use super::backends::Addr;
use super::raw_client::{Conn, Params, Response};

/// Read timeout while waiting for an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// One record as it arrived, in short: its type and request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub record_type: RecordType,
    pub request_id: u16,
    /// Content length (STDOUT/STDERR payload bytes; 0 for the others).
    pub len: usize,
}

/// A connection carrying many requests.
pub struct MuxConn {
    conn: Conn,
    partial: HashMap<u16, Response>,
    done: HashMap<u16, Vec<Response>>,
    /// Every record read, in arrival order.
    pub arrivals: Vec<Arrival>,
    /// Management records (GET_VALUES_RESULT, UNKNOWN_TYPE) in arrival order.
    pub management: Vec<Record>,
}

/// A CGI environment for `method` and `target` that Go, flup, tokio-fastcgi and the
/// responders all route on: REQUEST_URI and PATH_INFO are the path, SCRIPT_NAME is empty.
pub fn mux_params(method: &str, target: &str) -> Params {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params = Params::new();
    params
        .set("GATEWAY_INTERFACE", "CGI/1.1")
        .set("SERVER_PROTOCOL", "HTTP/1.1")
        .set("SERVER_NAME", "localhost")
        .set("SERVER_PORT", "80")
        .set("REMOTE_ADDR", "127.0.0.1")
        .set("REMOTE_PORT", "54321")
        .set("REQUEST_METHOD", method)
        .set("REQUEST_URI", target)
        .set("SCRIPT_NAME", "")
        .set("PATH_INFO", path)
        .set("QUERY_STRING", query)
        .set("HTTP_HOST", "localhost");
    params
}

impl MuxConn {
    /// Connects; panics if the backend does not accept.
    pub fn connect(addr: &Addr) -> MuxConn {
        let conn = Conn::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        conn.set_timeouts(Some(ANSWER_TIMEOUT)).expect("timeouts");
        MuxConn {
            conn,
            partial: HashMap::new(),
            done: HashMap::new(),
            arrivals: Vec::new(),
            management: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.conn.send_raw(bytes).expect("write records");
    }

    /// FCGI_GET_VALUES asking for `names`.
    pub fn ask_values(&mut self, names: &[&str]) {
        let mut out = BytesMut::new();
        let mut enc = ParamsEncoder::with_type(&mut out, RecordType::GetValues, NULL_REQUEST_ID);
        for name in names {
            enc.push(name.as_bytes(), b"").expect("a short name");
        }
        enc.finish_record();
        self.send(&out);
    }

    /// BEGIN_REQUEST (Responder, FCGI_KEEP_CONN) and the whole PARAMS stream of `id`.
    pub fn begin(&mut self, id: u16, params: &Params) {
        let mut out = BytesMut::new();
        Record::BeginRequest {
            request_id: id,
            body: BeginRequest {
                role: Role::Responder,
                keep_conn: true,
            },
        }
        .encode(&mut out);
        let mut enc = ParamsEncoder::new(&mut out, id);
        for (name, value) in params.iter() {
            enc.push(name, value).expect("a valid pair");
        }
        enc.finish();
        self.send(&out);
    }

    /// STDIN bytes of `id` (not the end of the stream; empty `data` sends nothing).
    pub fn stdin(&mut self, id: u16, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut out = BytesMut::new();
        encode_stream(&mut out, RecordType::Stdin, id, data);
        self.send(&out);
    }

    /// The empty STDIN record of `id`: the request is complete.
    pub fn end_stdin(&mut self, id: u16) {
        let mut out = BytesMut::new();
        encode_stream(&mut out, RecordType::Stdin, id, b"");
        self.send(&out);
    }

    /// A whole request: [`MuxConn::begin`], `body` on STDIN (CONTENT_LENGTH set when not
    /// empty) and its end.
    pub fn request(&mut self, id: u16, params: &Params, body: &[u8]) {
        let mut params = params.clone();
        if !body.is_empty() {
            params.set("CONTENT_LENGTH", body.len().to_string());
        }
        self.begin(id, &params);
        self.stdin(id, body);
        self.end_stdin(id);
    }

    /// FCGI_ABORT_REQUEST for `id`.
    pub fn abort(&mut self, id: u16) {
        let mut out = BytesMut::new();
        Record::AbortRequest { request_id: id }.encode(&mut out);
        self.send(&out);
    }

    /// Reads one record and files it; `Ok(false)` at a clean end of the connection.
    fn read_one(&mut self) -> io::Result<bool> {
        let Some(record) = self.conn.read_record()? else {
            return Ok(false);
        };
        let id = record.request_id();
        let len = record.payload().map_or(0, Bytes::len);
        self.arrivals.push(Arrival {
            record_type: record.record_type(),
            request_id: id,
            len,
        });
        if id == NULL_REQUEST_ID {
            self.management.push(record);
            return Ok(true);
        }
        let response = self.partial.entry(id).or_insert_with(empty_response);
        match record {
            Record::Stdout { data, .. } => response.stdout.extend_from_slice(&data),
            Record::Stderr { data, .. } => response.stderr.extend_from_slice(&data),
            Record::EndRequest { body, .. } => {
                let mut finished = self.partial.remove(&id).unwrap_or_else(empty_response);
                finished.end = body;
                self.done.entry(id).or_default().push(finished);
            }
            other => response.other_records.push(other),
        }
        Ok(true)
    }

    /// Reads until `id` has ended (its END_REQUEST arrived) and returns that answer;
    /// answers of other ids are kept. Panics on EOF or timeout.
    pub fn wait_end(&mut self, id: u16) -> Response {
        loop {
            if let Some(answers) = self.done.get_mut(&id)
                && !answers.is_empty()
            {
                return answers.remove(0);
            }
            match self.read_one() {
                Ok(true) => {}
                Ok(false) => panic!("EOF before END_REQUEST of {id}; {:?}", self.arrivals),
                Err(e) => panic!("waiting for END_REQUEST of {id}: {e}; {:?}", self.arrivals),
            }
        }
    }

    /// Reads whatever arrives within `window` (stops early at EOF); whether the
    /// connection is still open.
    pub fn read_for(&mut self, window: Duration) -> bool {
        let deadline = Instant::now() + window;
        let mut open = true;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            self.conn.set_timeouts(Some(left)).expect("timeouts");
            match self.read_one() {
                Ok(true) => {}
                Ok(false) => {
                    open = false;
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => panic!("reading: {e}; {:?}", self.arrivals),
            }
        }
        self.conn
            .set_timeouts(Some(ANSWER_TIMEOUT))
            .expect("timeouts");
        open
    }

    /// The answers ended so far for `id` (more than one when a backend ends an id twice).
    pub fn ended(&self, id: u16) -> &[Response] {
        self.done.get(&id).map_or(&[], Vec::as_slice)
    }

    /// How many END_REQUEST records arrived for `id`.
    pub fn end_count(&self, id: u16) -> usize {
        self.arrivals
            .iter()
            .filter(|a| a.request_id == id && a.record_type == RecordType::EndRequest)
            .count()
    }

    /// Index in [`MuxConn::arrivals`] of the first END_REQUEST of `id`.
    pub fn position_of_end(&self, id: u16) -> Option<usize> {
        self.arrivals
            .iter()
            .position(|a| a.request_id == id && a.record_type == RecordType::EndRequest)
    }

    /// The GET_VALUES_RESULT records read so far, each as its pairs.
    pub fn values_results(&self) -> Vec<Vec<(String, String)>> {
        self.management
            .iter()
            .filter_map(|record| match record {
                Record::GetValuesResult { data } => Some(pairs(data)),
                _ => None,
            })
            .collect()
    }
}

fn pairs(data: &[u8]) -> Vec<(String, String)> {
    PairIter::new(data)
        .map(|pair| {
            let (n, v) = pair.expect("well-formed pairs");
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn empty_response() -> Response {
    Response {
        stdout: Vec::new(),
        stderr: Vec::new(),
        end: EndRequest {
            app_status: 0,
            protocol_status: ProtocolStatus::RequestComplete,
        },
        stdin_error: None,
        other_records: Vec::new(),
    }
}
