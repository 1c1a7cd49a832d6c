//! The life of one request: route → body → params → connection → head → response.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::time::Instant;

use super::Inner;
use super::send::{Encoded, Head, send_request};
use crate::body::FcgiBody;
use crate::body::PooledExchange;
use crate::cgi::env::{self, RequestInfo, Target};
use crate::cgi::head::ResponseHead;
use crate::cgi::{
    self, ConnectionInfo, LocalRedirect, MAX_LOCAL_REDIRECTS, Mount, Resolved, Route, ScriptMode,
};
use crate::client::exchange::{Event, REQUEST_ID};
use crate::client::upload::{self, Upload};
use crate::error::{BoxError, Error, ErrorKind};
use crate::proto::{ParamsEncoder, RecordType, encode_stream};

/// `{FCGI_BEGIN_REQUEST, 1, {FCGI_RESPONDER, FCGI_KEEP_CONN}}` and its non-keep twin.
pub(crate) async fn run<B>(
    inner: Arc<Inner>,
    req: Request<B>,
    resolved: Option<Resolved>,
) -> Result<Response<FcgiBody>, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mount = Mount::of(&parts);
    // A caller that resolved the script itself (PhpSite) also routes local redirects.
    let caller_routes = resolved.is_some();
    let target = match (resolved, &inner.cgi.mode) {
        (Some(resolved), ScriptMode::DocumentRoot(root)) => {
            cgi::script_target(root, mount, resolved)?
        }
        _ => script_target(&inner, mount)?,
    };

    // Read small or unknown-length bodies before taking a backend worker: a slow
    // client then costs us memory or disk, not a php-fpm child.
    let (upload, content_length) =
        upload::prepare(body, env::declares_body(&parts), &inner.body).await?;
    let (mut exchange, mut head, mut rest) = exchange_head(
        &inner,
        &parts,
        mount,
        &target,
        upload,
        content_length,
        started,
    )
    .await?;

    // RFC 3875 §6.2.2: `Location: /path` without a Status asks the server to serve that
    // path instead, as a GET without a body.
    let mut hops = 0;
    while head.local_redirect && inner.local_redirects {
        let Some(redirected) = redirected_request(&parts, mount, &head) else {
            break; // outside this service's mount: pass the 302 on
        };
        if caller_routes {
            // Routing the target here would skip the caller's rules (PhpSite's deny list,
            // dotfiles, static files, front controller): `Location: /conf/local.php` would
            // run a denied script. Hand the redirect back for the caller to dispatch.
            drain(&inner, exchange, rest.len()).await;
            let mut res = Response::new(FcgiBody::empty());
            *res.status_mut() = head.status;
            *res.headers_mut() = head.headers;
            res.extensions_mut().insert(LocalRedirect(redirected));
            return Ok(res);
        }
        hops += 1;
        if hops > MAX_LOCAL_REDIRECTS {
            return Err(Error::msg(
                ErrorKind::InvalidResponseHead,
                format!("more than {MAX_LOCAL_REDIRECTS} local redirects"),
            ));
        }
        drain(&inner, exchange, rest.len()).await;
        let mount = Mount::of(&redirected);
        let target = script_target(&inner, mount)?;
        (exchange, head, rest) = exchange_head(
            &inner,
            &redirected,
            mount,
            &target,
            Upload::Empty,
            None,
            started,
        )
        .await?;
    }
    build_response(&inner, &parts.method, exchange, head, rest).await
}

fn script_target<'a>(inner: &'a Inner, mount: Mount<'a>) -> Result<Target<'a>, Error> {
    match cgi::route(&inner.cgi, mount)? {
        Route::Script(target) => Ok(target),
        Route::StaticFile(file) => {
            tracing::debug!(file = %file.display(), "not a script under the document root");
            Err(Error::new(ErrorKind::NotFound))
        }
    }
}

/// The request a local redirect asks for: GET of the new path (below this service's
/// mount), same headers minus the body's, no body.
fn redirected_request(parts: &Parts, mount: Mount<'_>, head: &ResponseHead) -> Option<Parts> {
    let location = head.headers.get(http::header::LOCATION)?.to_str().ok()?;
    let below_mount = if mount.prefix.is_empty() {
        location
    } else {
        let rest = location.strip_prefix(mount.prefix)?;
        if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
            return None;
        }
        rest
    };
    let inner_uri = if below_mount.is_empty() || below_mount.starts_with('?') {
        format!("/{below_mount}")
    } else {
        below_mount.to_owned()
    };
    let mut req = http::Request::new(());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = inner_uri.parse().ok()?;
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    for name in [
        http::header::CONTENT_LENGTH,
        http::header::CONTENT_TYPE,
        http::header::TRANSFER_ENCODING,
    ] {
        req.headers_mut().remove(name);
    }
    *req.extensions_mut() = parts.extensions.clone();
    #[cfg(feature = "axum")]
    req.extensions_mut()
        .insert(axum::extract::OriginalUri(location.parse().ok()?));
    let mut extra = parts
        .extensions
        .get::<crate::RequestParams>()
        .cloned()
        .unwrap_or_default();
    extra.insert(
        "REDIRECT_URL",
        mount.request_uri.split('?').next().unwrap_or(""),
    );
    req.extensions_mut().insert(extra);
    Some(req.into_parts().0)
}

/// Encodes the request, sends it on a pooled connection and reads the response head,
/// retrying once on a fresh connection when a reused one turns out to be stale.
async fn exchange_head(
    inner: &Inner,
    parts: &Parts,
    mount: Mount<'_>,
    target: &Target<'_>,
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
    };
    let Head {
        exchange,
        head,
        rest,
    } = send_request(inner, encoded, started).await?;
    Ok((exchange, head, rest))
}

async fn build_response(
    inner: &Inner,
    method: &Method,
    exchange: PooledExchange,
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
        drain(inner, exchange, rest.len()).await;
        FcgiBody::empty()
    } else {
        FcgiBody::stream(exchange, rest, head.content_length)
    };
    let mut res = Response::new(body);
    *res.status_mut() = head.status;
    *res.headers_mut() = head.headers;
    Ok(res)
}

/// Discards the rest of a response nobody will read, then returns the connection.
async fn drain(inner: &Inner, mut exchange: PooledExchange, mut discarded: usize) {
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
