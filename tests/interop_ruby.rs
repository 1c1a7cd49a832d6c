//! `FcgiService` in front of a Rack application over FastCGI (`Rack::Handler::FastCGI`,
//! the stack the Rails world ran behind mod_proxy_fcgi): env, POST echo, cookies, and
//! the pure-Ruby fcgi library surviving a request the client abandoned.
//! Skips loudly without Ruby, ruby-rack and ruby-fcgi (`FCGI_INTEROP=require` fails).

mod support;

use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower_fastcgi::FcgiService;

use support::backends::ruby::RackServer;
use support::http::{ClientBody, HttpClient, Server, empty, full};
use support::{EnvDump, StartError};

struct Gateway {
    rack: RackServer,
    http: Server,
    client: HttpClient,
}

/// Starts the Rack app (or skips), mounts it at `/app` in application mode.
fn run<F: std::future::Future<Output = ()>>(check: impl FnOnce(Gateway) -> F) {
    let policy = support::policy();
    if policy == support::Policy::SkipAll {
        return;
    }
    let rack = match RackServer::start() {
        Ok(rack) => rack,
        Err(StartError::Missing(what)) if policy == support::Policy::Require => {
            panic!("FCGI_INTEROP=require, but rack cannot run: {what}")
        }
        Err(StartError::Missing(what)) => return support::skip_loudly("rack", &what),
        Err(StartError::Failed(why)) => panic!("rack is installed but did not start:\n{why}"),
    };
    support::runtime().block_on(async move {
        let svc = FcgiService::builder()
            .backend(rack.backend())
            .response_head_timeout(Duration::from_secs(30))
            .build();
        let http = Server::start(Router::new().nest_service("/app", svc)).await;
        let client = http.http();
        let g = Gateway { rack, http, client };
        tokio::time::timeout(Duration::from_secs(120), check(g))
            .await
            .expect("the check finished in time");
    });
}

impl Gateway {
    fn context(&self, what: &str) -> String {
        format!("{what}\n{}", self.rack.log_report())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: ClientBody,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let req = Request::builder()
            .method(method)
            .uri(self.http.url(path))
            .body(body)
            .unwrap();
        let res = self
            .client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{}", self.context(&format!("{e:?}"))));
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("the body").to_bytes();
        (parts.status, parts.headers, body)
    }
}

#[test]
fn env_reaches_rack() {
    run(|g| async move {
        let (status, _, body) = g.send(Method::GET, "/app/env?x=%20y", empty()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            g.context(&String::from_utf8_lossy(&body))
        );
        let env = EnvDump::parse(&body).unwrap();
        assert_eq!(env.backend, "rack");
        for (name, value) in [
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/app"),
            ("PATH_INFO", "/env"),
            ("QUERY_STRING", "x=%20y"),
            ("REQUEST_URI", "/app/env?x=%20y"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
        ] {
            assert_eq!(env.get(name), Some(value), "{name}: {:#?}", env.env);
        }
        assert!(env.read_body(b""));
    });
}

#[test]
fn post_bodies_are_read_and_echoed() {
    run(|g| async move {
        let body: Bytes = (0..300_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let (status, _, answer) = g.send(Method::POST, "/app/env", full(body.clone())).await;
        assert_eq!(status, StatusCode::OK, "{}", g.context("env"));
        let env = EnvDump::parse(&answer).unwrap();
        assert_eq!(env.get("CONTENT_LENGTH"), Some("300000"));
        assert!(env.read_body(&body), "{}", g.context("the body rack read"));
        let (status, _, echo) = g.send(Method::POST, "/app/echo", full(body.clone())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echo, body, "{}", g.context("echo"));
    });
}

#[test]
fn several_cookies_stay_separate() {
    run(|g| async move {
        let (status, headers, body) = g.send(Method::GET, "/app/cookies", empty()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"cookies\n");
        let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies.len(), 3, "{cookies:?}");
        assert_eq!(cookies[0], "a=1");
        assert_eq!(cookies[2], "c=3; Secure");
    });
}

/// A client that gives up mid-request closes the backend connection early; the pure-Ruby
/// fcgi raises on that, and the app's loop serves on.
#[test]
fn an_abandoned_request_does_not_kill_the_app() {
    run(|g| async move {
        let req = Request::builder()
            .method(Method::POST)
            .uri(g.http.url("/app/echo"))
            .header(header::CONTENT_LENGTH, "1000000")
            .body(full(Bytes::from_static(b"only a little")))
            .unwrap();
        // The body is shorter than announced: the request cannot complete; give up.
        let _ = tokio::time::timeout(Duration::from_millis(500), g.client.request(req)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..3 {
            let (status, _, body) = g.send(Method::GET, "/app/cookies", empty()).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{}",
                g.context("after the abandoned request")
            );
            assert_eq!(&body[..], b"cookies\n");
        }
        assert!(g.rack.is_running(), "{}", g.context("rack exited"));
        // The early close did reach the library (and its loop caught it).
        assert!(
            g.rack.log_report().contains("; serving on"),
            "{}",
            g.context("the abandoned request never raised in fcgi")
        );
    });
}
