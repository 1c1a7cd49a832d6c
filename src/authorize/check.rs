//! One access check: the request's environment to the authorizer (FCGI_AUTHORIZER), its
//! answer to a [`Verdict`]. Every way the check can fail is a response, never a pass.

use bytes::BytesMut;
use http::request::Parts;
use http::{Response, StatusCode};
use std::borrow::Cow;
use tokio::time::Instant;

use super::variables::AuthorizerVariables;
use crate::body::FcgiBody;
use crate::cgi::env::{self, RequestInfo, Script};
use crate::cgi::{ConnectionInfo, Mount, ScriptMode};
use crate::client::exchange::REQUEST_ID;
use crate::error::{Error, ErrorKind};
use crate::proto::{ParamsEncoder, Role};
use crate::service::redirect::Outcome;
use crate::service::respond::respond;
use crate::service::{Encoded, FastCgi, Head, Inner, build_response, drain, send_request};

/// What the layer does with the request.
pub(crate) enum Verdict {
    /// Call the inner service, with these variables.
    Allow(AuthorizerVariables),
    /// Answer the client with this (the authorizer's refusal, or the failure response).
    Respond(Response<FcgiBody>),
}

/// Asks the authorizer about `parts`. Refusals and failures are logged and go through the
/// authorizer service's error hook like its own responses.
pub(crate) async fn authorize(inner: &Inner, parts: &Parts) -> Verdict {
    match ask(inner, parts).await {
        Ok(Answer::Allow(vars)) => Verdict::Allow(vars),
        Ok(Answer::Deny(res)) => {
            tracing::info!(
                status = res.status().as_u16(),
                "the FastCGI authorizer refused the request"
            );
            Verdict::Respond(respond(inner, parts, Ok(Outcome::Backend(res))).await)
        }
        Err(err) => Verdict::Respond(respond(inner, parts, Err(err)).await),
    }
}

enum Answer {
    Allow(AuthorizerVariables),
    Deny(Response<FcgiBody>),
}

async fn ask(inner: &Inner, parts: &Parts) -> Result<Answer, Error> {
    let started = Instant::now();
    let target = authorizer_script(&inner.cgi.mode);
    let mut records = BytesMut::with_capacity(1024);
    let mut params = ParamsEncoder::new(&mut records, REQUEST_ID);
    env::write_params(
        &mut params,
        &inner.cgi,
        &RequestInfo {
            parts,
            target: &target,
            // The whole target the client asked for, even below an axum nest: that is
            // what access is decided on.
            request_uri: Mount::of(parts).request_uri,
            content_length: None,
            connection: ConnectionInfo::from_extensions(&parts.extensions),
            role: Role::Authorizer,
            data: None,
        },
    )?;
    params.finish();
    // No STDIN record at all, as Apache sends it: the body belongs to the service behind
    // the layer, and on a kept-alive connection a STDIN record for a request the
    // application already finished is a protocol error to libfcgi and tokio-fastcgi
    // (both close the connection) and makes php-fpm drop it. (lighttpd sends the empty
    // terminator, but never keeps an authorizer connection.)
    let encoded = Encoded {
        records: records.freeze(),
        stdin: None,
        data: None,
        // A check reads the request, never the body, and decides nothing twice: asking
        // another authorizer after one that may have run is safe for every method.
        idempotent: true,
        role: Role::Authorizer,
    };
    let Head {
        exchange,
        head,
        rest,
    } = send_request(inner, encoded, started).await?;
    if head.status != StatusCode::OK {
        return build_response(inner, &FastCgi, &parts.method, exchange, head, rest)
            .await
            .map(Answer::Deny);
    }
    if !head.explicit_status {
        // lighttpd lets a head without Status through; an authorizer that forgot to say
        // 200 (or printed a stray blank line) must not open the door.
        return Err(Error::msg(
            ErrorKind::InvalidResponseHead,
            "the authorizer's answer has no Status; only an explicit `Status: 200` allows a request",
        ));
    }
    let vars = AuthorizerVariables::from_head(head.variables);
    // The 200's body is not for anyone; reading it returns the connection to the pool.
    drain(inner, exchange, rest.len()).await;
    Ok(Answer::Allow(vars))
}

/// What the authorizer runs: the service's fixed SCRIPT_FILENAME and DOCUMENT_ROOT (how
/// php-fpm finds an authorizer script); the request path maps to no script.
fn authorizer_script(mode: &ScriptMode) -> Script<'_> {
    match mode {
        ScriptMode::Application {
            script_filename,
            document_root,
            ..
        } => Script {
            script_filename: script_filename.as_deref().map(Cow::Borrowed),
            document_root: document_root.as_deref(),
            ..Script::default()
        },
        ScriptMode::DocumentRoot(root) => Script {
            document_root: Some(root.root.as_path()),
            ..Script::default()
        },
    }
}
