//! One filtered file: resolve it under the root, open it, send PARAMS, STDIN and DATA,
//! and build the response from the application's output.

use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use bytes::BytesMut;
use http::Method;
use http::request::Parts;
use http_body::Body;
use tokio::time::Instant;

use crate::cgi::env::{self, DataFile, RequestInfo};
use crate::cgi::path::Lookup;
use crate::cgi::route::script_under_root;
use crate::cgi::{ConnectionInfo, Mount, ScriptMode};
use crate::client::exchange::REQUEST_ID;
use crate::client::upload::{self, Upload};
use crate::error::{BoxError, Error, ErrorKind};
use crate::proto::{ParamsEncoder, RecordType, Role, encode_stream};
use crate::service::redirect::Outcome;
use crate::service::{Encoded, FastCgi, Head, Inner, build_response, send_request};

/// Serves the file the request names through the filter application.
pub(super) async fn serve<B>(inner: &Inner, parts: &Parts, body: B) -> Result<Outcome, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let ScriptMode::DocumentRoot(root) = &inner.cgi.mode else {
        // `FcgiFilter::new` refuses such a service; refusing here too is the safe answer.
        return Err(Error::msg(
            ErrorKind::Config,
            "a filter needs a document root",
        ));
    };
    let mount = Mount::of(parts);
    let clean = mount.clean_rest()?;
    // `.git/config`, `.env`, `.htpasswd`: a directory of documents often holds files
    // nobody meant to publish, filtered or not (PhpSite refuses them by default too).
    if clean.segments().any(|s| s.starts_with(b".")) {
        return Ok(Outcome::NotFound("dotfiles are never filtered"));
    }
    let file = match root.lookup(&clean) {
        Lookup::File(file) => file,
        Lookup::DirectoryWithoutSlash => return Ok(Outcome::Redirect(mount.with_trailing_slash())),
        // A script's source is not data: filtering it could publish it.
        Lookup::Script { .. } => return Ok(Outcome::NotFound("a script is never filtered")),
        Lookup::PastAFile | Lookup::Missing => {
            return Ok(Outcome::NotFound("no file to filter for this path"));
        }
    };
    let Some((data, info)) = open(&file).await? else {
        return Ok(Outcome::NotFound("the file to filter vanished"));
    };
    let target = script_under_root(root, mount, clean.bytes().to_vec(), Vec::new(), file)?;

    let declares_body = parts.headers.contains_key(http::header::CONTENT_LENGTH)
        || parts.headers.contains_key(http::header::TRANSFER_ENCODING)
        || matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    let (stdin, content_length) = upload::prepare(body, declares_body, &inner.body).await?;

    let mut records = BytesMut::with_capacity(1024);
    let mut params = ParamsEncoder::new(&mut records, REQUEST_ID);
    env::write_params(
        &mut params,
        &inner.cgi,
        &RequestInfo {
            parts,
            target: &target,
            request_uri: mount.request_uri,
            content_length,
            connection: ConnectionInfo::from_extensions(&parts.extensions),
            role: Role::Filter,
            data: Some(info),
        },
    )?;
    params.finish();
    drop(target);
    // As for a responder: a body already in memory goes out with the params.
    let stdin = match stdin {
        Upload::Empty => {
            encode_stream(&mut records, RecordType::Stdin, REQUEST_ID, b"");
            None
        }
        Upload::Chunks { chunks, .. } => {
            for chunk in &chunks {
                encode_stream(&mut records, RecordType::Stdin, REQUEST_ID, chunk);
            }
            encode_stream(&mut records, RecordType::Stdin, REQUEST_ID, b"");
            None
        }
        other => Some(other),
    };
    let encoded = Encoded {
        records: records.freeze(),
        stdin,
        data: Some(data),
        idempotent: parts.method.is_idempotent(),
        role: Role::Filter,
    };
    let Head {
        exchange,
        head,
        rest,
    } = send_request(inner, encoded, started).await?;
    build_response(inner, &FastCgi, &parts.method, exchange, head, rest)
        .await
        .map(Outcome::Backend)
}

/// The file as a data stream, with its length and modification time; `None` when it is
/// gone since the lookup.
async fn open(path: &Path) -> Result<Option<(Upload, DataFile)>, Error> {
    let failed = |err: io::Error| {
        Error::msg(
            ErrorKind::Config,
            format!("cannot read {} for the filter: {err}", path.display()),
        )
    };
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(failed(err)),
    };
    let meta = file.metadata().await.map_err(failed)?;
    let last_mod = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let length = meta.len();
    let data = Upload::File {
        file: Box::new(file),
        len: length,
        pos: 0,
        rewinding: false,
    };
    Ok(Some((data, DataFile { length, last_mod })))
}
