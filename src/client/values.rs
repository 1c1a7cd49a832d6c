//! FCGI_GET_VALUES on a connection of its own: what the application says about its
//! limits (`FCGI_MAX_CONNS`, `FCGI_MAX_REQS`, `FCGI_MPXS_CONNS`).
//!
//! The query always gets a throw-away connection, never a pooled one: php-fpm closes
//! the connection right after its GET_VALUES_RESULT, php-cgi answers and keeps it open,
//! flup under Python 3 answers with an empty record, and an application that serves one
//! connection at a time (a single-process libfcgi app) does not answer while it serves
//! another. So the answer is read once, under one deadline, and the connection is
//! closed whatever happened. Used by active health checks (any answer means the process
//! is alive) and meant for multiplexing discovery (`MPXS_CONNS`, `MAX_REQS`).

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::BytesMut;

use super::Backend;
use super::conn::Connection;
use super::stream::Stream;
use crate::error::{Error, ErrorKind, Timeout};
use crate::proto::{PairIter, ParamsEncoder, Record, RecordType, values};

/// What a GET_VALUES_RESULT said; `None` for a variable the application left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Values {
    pub(crate) max_conns: Option<u32>,
    pub(crate) max_reqs: Option<u32>,
    pub(crate) mpxs_conns: Option<bool>,
    /// The application answered FCGI_UNKNOWN_TYPE: it does not know GET_VALUES at all
    /// (alive, but it said nothing about its limits).
    pub(crate) unknown_type: bool,
}

/// Connects to `backend`, asks for all three variables and reads the answer, all within
/// `limit`. `Ok(None)`: the application closed the connection without answering.
/// Refused connections, the deadline and anything that is not a management answer are
/// errors.
pub(crate) async fn get_values(
    backend: &Backend,
    limit: Duration,
) -> Result<Option<Values>, Error> {
    tokio::time::timeout(limit, query(backend))
        .await
        .map_err(|_| Error::timeout(Timeout::ResponseHead))?
}

async fn query(backend: &Backend) -> Result<Option<Values>, Error> {
    let stream = Stream::connect(backend)
        .await
        .map_err(|err| Error::with(ErrorKind::Connect, format!("{backend}: {err}")))?;
    write_all(&stream, &request()).await.map_err(Error::io)?;
    let mut conn = Connection::new(stream);
    match std::future::poll_fn(|cx| conn.poll_record(cx)).await? {
        None => Ok(None),
        Some(Record::GetValuesResult { data }) => parse(&data).map(Some),
        Some(Record::UnknownType { .. }) => Ok(Some(Values {
            unknown_type: true,
            ..Values::default()
        })),
        Some(other) => Err(Error::msg(
            ErrorKind::Protocol,
            format!(
                "{backend} answered FCGI_GET_VALUES with a {:?} record",
                other.record_type()
            ),
        )),
    }
}

/// The GET_VALUES record: the three names with empty values, request id 0.
fn request() -> BytesMut {
    let mut buf = BytesMut::with_capacity(64);
    let mut enc = ParamsEncoder::with_type(&mut buf, RecordType::GetValues, 0);
    for name in [values::MAX_CONNS, values::MAX_REQS, values::MPXS_CONNS] {
        // Three short names always fit in one record.
        let _ = enc.push(name.as_bytes(), b"");
    }
    enc.finish_record();
    buf
}

/// Reads the pairs of a GET_VALUES_RESULT. Unknown names are ignored (the spec lets an
/// application answer more than was asked); a value that is not a number is an error,
/// since a caller would size streams by it.
fn parse(data: &[u8]) -> Result<Values, Error> {
    let mut out = Values::default();
    for pair in PairIter::new(data) {
        let (name, value) = pair.map_err(Error::protocol)?;
        let number = || {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    Error::msg(
                        ErrorKind::Protocol,
                        format!(
                            "GET_VALUES_RESULT: {} = {:?} is not a number",
                            String::from_utf8_lossy(name),
                            String::from_utf8_lossy(value)
                        ),
                    )
                })
        };
        match name {
            n if n == values::MAX_CONNS.as_bytes() => out.max_conns = Some(number()?),
            n if n == values::MAX_REQS.as_bytes() => out.max_reqs = Some(number()?),
            // HAProxy's rule: "1" multiplexes, anything else does not.
            n if n == values::MPXS_CONNS.as_bytes() => out.mpxs_conns = Some(value == b"1"),
            _ => {}
        }
    }
    Ok(out)
}

async fn write_all(stream: &Stream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        std::future::poll_fn(|cx| stream.poll_write_ready(cx)).await?;
        match stream.try_write_vectored(&[IoSlice::new(bytes)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn result(pairs: &[(&str, &str)]) -> BytesMut {
        let mut buf = BytesMut::new();
        let mut enc = ParamsEncoder::with_type(&mut buf, RecordType::GetValuesResult, 0);
        for (n, v) in pairs {
            enc.push(n.as_bytes(), v.as_bytes()).unwrap();
        }
        enc.finish_record();
        buf
    }

    /// A one-shot server on loopback that reads the query and answers `answer` (then
    /// closes, or stays silent when `answer` is `None`).
    async fn server(answer: Option<Vec<u8>>) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut query = vec![0u8; request().len()];
            s.read_exact(&mut query).await.unwrap();
            assert_eq!(query, &request()[..]);
            match answer {
                Some(bytes) => {
                    s.write_all(&bytes).await.unwrap();
                    let _ = s.shutdown().await;
                }
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        });
        Backend::tcp(addr.to_string())
    }

    #[tokio::test]
    async fn parses_the_three_variables_and_ignores_others() {
        let answer = result(&[
            ("FCGI_MAX_CONNS", "4"),
            ("FCGI_MAX_REQS", "4"),
            ("FCGI_MPXS_CONNS", "0"),
            ("X_OTHER", "y"),
        ]);
        let b = server(Some(answer.to_vec())).await;
        let v = get_values(&b, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            v,
            Some(Values {
                max_conns: Some(4),
                max_reqs: Some(4),
                mpxs_conns: Some(false),
                unknown_type: false,
            })
        );
    }

    #[tokio::test]
    async fn an_empty_answer_unknown_type_and_a_silent_close_are_told_apart() {
        let empty = server(Some(result(&[]).to_vec())).await;
        assert_eq!(
            get_values(&empty, Duration::from_secs(5)).await.unwrap(),
            Some(Values::default())
        );
        let mut unknown = BytesMut::new();
        Record::UnknownType {
            record_type: RecordType::GetValues.as_u8(),
        }
        .encode(&mut unknown);
        let unknown = server(Some(unknown.to_vec())).await;
        let v = get_values(&unknown, Duration::from_secs(5)).await.unwrap();
        assert!(v.is_some_and(|v| v.unknown_type));
        let closes = server(Some(Vec::new())).await;
        assert_eq!(
            get_values(&closes, Duration::from_secs(5)).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn silence_garbage_and_refusal_are_errors() {
        let silent = server(None).await;
        let err = get_values(&silent, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        let garbage = server(Some(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())).await;
        assert!(get_values(&garbage, Duration::from_secs(5)).await.is_err());
        let bad_number = server(Some(result(&[("FCGI_MAX_REQS", "many")]).to_vec())).await;
        assert!(
            get_values(&bad_number, Duration::from_secs(5))
                .await
                .is_err()
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = Backend::tcp(listener.local_addr().unwrap().to_string());
        drop(listener);
        let err = get_values(&dead, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect);
    }
}
