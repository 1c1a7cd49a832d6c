//! `FcgiAuthorizerLayer` against real authorizers: flup, Perl FCGI (libfcgi) and the
//! tokio-fastcgi crate, each answering the decision table of
//! `tests/support/authorizers/mod.rs`, in front of a native axum handler and of a flup
//! responder through `FcgiService`.

#[path = "../examples/support/gateway_auth.rs"]
mod gateway_auth;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::any;
use http::{Method, StatusCode};
use support::authorizers::{self, Authorizer, Flavor};
use support::http::{HttpClient, Server, empty, full, request};
use support::{EnvDump, Kind};
use tower_fastcgi::{AuthorizerVariables, Cause, FcgiAuthorizerLayer, FcgiService, RequestParams};

const FLAVORS: [Flavor; 3] = [Flavor::Flup, Flavor::Perl, Flavor::TokioFastcgi];

/// A native handler behind the layer that counts its calls and shows what it was given.
fn guarded_app(authorizer: &FcgiService, calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/private/{*rest}",
            any(move |req: Request| {
                let calls = Arc::clone(&calls);
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let vars = req.extensions().get::<AuthorizerVariables>();
                    let params = req.extensions().get::<RequestParams>();
                    let var = |name: &str| vars.and_then(|v| v.get(name)).unwrap_or("-").to_owned();
                    let names: Vec<String> = vars
                        .map(|v| v.iter().map(|(n, _)| n.to_owned()).collect())
                        .unwrap_or_default();
                    format!(
                        "user={} team={} names={} params={}",
                        var("AUTH_USER"),
                        var("X_Team"),
                        names.join(","),
                        params.is_some(),
                    )
                }
            }),
        )
        .layer(FcgiAuthorizerLayer::new(authorizer.clone()))
}

fn authorizer_service(auth: &Authorizer) -> FcgiService {
    FcgiService::builder().backend(auth.backend()).build()
}

async fn get_with(client: &HttpClient, target: &str, authorization: &str) -> support::http::Reply {
    client
        .fetch(
            request(Method::GET, target)
                .header("authorization", authorization)
                .body(empty())
                .unwrap(),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_hands_the_variables_to_a_native_handler_and_nothing_to_the_client() {
    for flavor in FLAVORS {
        let Some(auth) = authorizers::start_or_skip(flavor) else {
            continue;
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let server =
            Server::start(guarded_app(&authorizer_service(&auth), Arc::clone(&calls))).await;
        let reply = get_with(&server.http(), "/private/page?x=1", "Bearer good").await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{flavor:?}: {}\n{}",
            reply.text(),
            auth.log()
        );
        assert_eq!(
            reply.text(),
            "user=alice team=ops names=AUTH_USER,X_Team params=true",
            "{flavor:?}: SCRIPT_FILENAME must be refused, names kept as written"
        );
        for leaked in ["x-authorizer-only", "variable-auth_user", "variable-x-team"] {
            assert!(
                reply.headers.get(leaked).is_none(),
                "{flavor:?} leaked {leaked}"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{flavor:?}");
    }
}

#[test]
fn allow_makes_the_variables_cgi_variables_of_a_flup_responder() {
    let _serial = support::one_at_a_time();
    let Some(responder) = support::backend_or_skip(Kind::FlupUnix) else {
        return;
    };
    support::runtime().block_on(async {
        for flavor in FLAVORS {
            let Some(auth) = authorizers::start_or_skip(flavor) else {
                continue;
            };
            let wsgi = FcgiService::builder()
                .backend(responder.fcgi_backend())
                .build();
            let app = Router::new()
                .nest_service("/app", wsgi.clone())
                .layer(FcgiAuthorizerLayer::new(authorizer_service(&auth)));
            let server = Server::start(app).await;
            let reply = get_with(&server.http(), "/app/env", "Bearer good").await;
            assert_eq!(reply.status, StatusCode::OK, "{flavor:?}: {}", reply.text());
            let env = EnvDump::parse(&reply.body).unwrap();
            assert_eq!(env.get("AUTH_USER"), Some("alice"), "{flavor:?}");
            assert_eq!(env.get("X_Team"), Some("ops"), "{flavor:?}");
            assert_ne!(
                env.get("SCRIPT_FILENAME"),
                Some("/etc/passwd"),
                "{flavor:?}"
            );
            assert_eq!(
                env.get("FCGI_ROLE"),
                None,
                "{flavor:?}: the responder is a responder"
            );
            assert!(reply.headers.get("x-authorizer-only").is_none());

            let denied = get_with(&server.http(), "/app/env", "Bearer bad").await;
            assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{flavor:?}");
            assert_eq!(
                wsgi.stats().requests,
                1,
                "{flavor:?}: the responder ran for the denial"
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_is_the_authorizers_answer_and_the_service_never_runs() {
    for flavor in FLAVORS {
        let Some(auth) = authorizers::start_or_skip(flavor) else {
            continue;
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let server =
            Server::start(guarded_app(&authorizer_service(&auth), Arc::clone(&calls))).await;
        let reply = server
            .http()
            .fetch(
                request(Method::POST, "/private/doc?id=7")
                    .header("authorization", "Bearer bad")
                    .body(full("a body the authorizer must not see"))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{flavor:?}: {}",
            reply.text()
        );
        assert_eq!(
            reply.header("www-authenticate"),
            "Bearer realm=\"test\"",
            "{flavor:?}"
        );
        assert_eq!(reply.text(), "denied /private/doc?id=7", "{flavor:?}");
        assert_eq!(
            reply.header("x-seen"),
            "role=AUTHORIZER;cl=no;sn=no;pi=no;uri=/private/doc?id=7;auth=Bearer bad",
            "{flavor:?}: what the authorizer received"
        );
        assert!(
            reply.headers.get("variable-auth_user").is_none(),
            "{flavor:?}"
        );
        // No Authorization at all is a refusal too, not a pass.
        let anonymous = server.http().get("/private/doc").await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{flavor:?}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "{flavor:?}: the service ran"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_status_or_output_fail_closed() {
    for flavor in [Flavor::Perl, Flavor::TokioFastcgi] {
        let Some(auth) = authorizers::start_or_skip(flavor) else {
            continue;
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let server =
            Server::start(guarded_app(&authorizer_service(&auth), Arc::clone(&calls))).await;
        for token in ["Bearer nostatus", "Bearer empty"] {
            let reply = get_with(&server.http(), "/private/x", token).await;
            assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{flavor:?} {token}");
            assert!(!reply.text().contains("eve"), "{flavor:?} {token}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "{flavor:?}: a broken answer let it through"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorizer_that_is_down_or_silent_fails_closed() {
    let calls = Arc::new(AtomicUsize::new(0));
    // Down: the socket refuses connections.
    let Some(mut auth) = authorizers::start_or_skip(Flavor::TokioFastcgi) else {
        return;
    };
    auth.stop();
    tokio::task::yield_now().await;
    let _ = std::fs::remove_file(&auth.socket);
    let server = Server::start(guarded_app(&authorizer_service(&auth), Arc::clone(&calls))).await;
    let reply = get_with(&server.http(), "/private/x", "Bearer good").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());

    // Silent: accepts and never answers; the head timeout is a 504.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let silent = FcgiService::builder()
        .unix(&path)
        .response_head_timeout(Duration::from_millis(300))
        .build();
    let server = Server::start(guarded_app(&silent, Arc::clone(&calls))).await;
    let reply = get_with(&server.http(), "/private/x", "Bearer good").await;
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        reply.text()
    );
    holder.abort();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the service ran without an authorization"
    );
}

#[test]
fn a_responder_asked_to_authorize_is_502_with_a_hint_naming_the_role() {
    let _serial = support::one_at_a_time();
    let Some(responder) = support::backend_or_skip(Kind::FlupUnix) else {
        return;
    };
    support::runtime().block_on(async {
        let seen = Arc::new(Mutex::new(String::new()));
        let hook_seen = Arc::clone(&seen);
        let not_an_authorizer = FcgiService::builder()
            .backend(responder.fcgi_backend())
            .on_error(move |failure| {
                if let Cause::Error(err) = failure.cause {
                    *hook_seen.lock().unwrap() = format!("{:?}: {err}", err.kind());
                }
                None
            })
            .build();
        let calls = Arc::new(AtomicUsize::new(0));
        let server = Server::start(guarded_app(&not_an_authorizer, Arc::clone(&calls))).await;
        let reply = get_with(&server.http(), "/private/x", "Bearer good").await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        let seen = seen.lock().unwrap().clone();
        assert!(seen.starts_with("UnknownRole"), "{seen}");
        assert!(seen.contains("Authorizer role"), "{seen}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_authorized_requests_on_kept_alive_connections() {
    for flavor in FLAVORS {
        let Some(auth) = authorizers::start_or_skip(flavor) else {
            continue;
        };
        // A single Perl FCGI process serves one connection at a time, and keeps serving a
        // kept-alive one: more connections than processes would wait forever.
        let connections = if flavor == Flavor::Perl { 1 } else { 8 };
        let authorizer = FcgiService::builder()
            .backend(auth.backend())
            .max_connections(connections)
            .build();
        let calls = Arc::new(AtomicUsize::new(0));
        let server = Server::start(guarded_app(&authorizer, Arc::clone(&calls))).await;
        let client = server.http();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let client = client.clone();
            tasks.spawn(async move {
                let token = if i % 10 == 9 {
                    "Bearer bad"
                } else {
                    "Bearer good"
                };
                (
                    token,
                    get_with(&client, &format!("/private/{i}"), token).await,
                )
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (token, reply) = done.unwrap();
            if token == "Bearer good" {
                assert_eq!(reply.status, StatusCode::OK, "{flavor:?}: {}", reply.text());
                assert!(
                    reply.text().starts_with("user=alice team=ops"),
                    "{flavor:?}"
                );
            } else {
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{flavor:?}");
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 180, "{flavor:?}");
        let pool = authorizer.stats().pool;
        // The checks' framing (no STDIN record) keeps every connection usable: none was
        // found closed by the authorizer after a check.
        assert_eq!(
            pool.stale_retries,
            0,
            "{flavor:?}: {pool:?}\n{}",
            auth.log()
        );
        assert!(pool.connections_reused > 0, "{flavor:?}: {pool:?}");
        assert!(
            pool.connections_opened <= connections as u64,
            "{flavor:?}: {pool:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_auth_option_guards_every_path_under_its_prefix() {
    let Some(auth) = authorizers::start_or_skip(Flavor::TokioFastcgi) else {
        return;
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    // One `/` mount serving everything, as `--php /=...` would.
    let app = Router::new().fallback(move |req: Request| {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let user = req
                .extensions()
                .get::<AuthorizerVariables>()
                .and_then(|v| v.get("AUTH_USER").map(str::to_owned));
            format!(
                "served {} as {}",
                req.uri().path(),
                user.as_deref().unwrap_or("anonymous")
            )
        }
    });
    let guards = [gateway_auth::Guard {
        prefix: "/private".into(),
        authorizer: authorizer_service(&auth),
    }];
    let server = Server::start_service(gateway_auth::guard(app, &guards)).await;
    let client = server.http();
    let open = client.get("/public/x").await;
    assert_eq!(open.text(), "served /public/x as anonymous");
    for sneaky in [
        "/private/x",
        "/%70rivate/x",
        "/public/../private/x",
        "//private",
    ] {
        let denied = client.get(sneaky).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{sneaky}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a guarded path was served");
    let allowed = get_with(&client, "/private/x", "Bearer good").await;
    assert_eq!(allowed.text(), "served /private/x as alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_allows_skip_the_authorizer_only_for_the_same_credential_and_target() {
    let Some(auth) = authorizers::start_or_skip(Flavor::TokioFastcgi) else {
        return;
    };
    let layer = FcgiAuthorizerLayer::new(authorizer_service(&auth))
        .cache_allowed(http::header::AUTHORIZATION, Duration::from_millis(400));
    let app = Router::new()
        .route(
            "/private/{*rest}",
            any(|req: Request| async move {
                let vars = req.extensions().get::<AuthorizerVariables>();
                vars.and_then(|v| v.get("AUTH_USER"))
                    .unwrap_or("-")
                    .to_owned()
            }),
        )
        .layer(layer);
    let server = Server::start(app).await;
    let client = server.http();
    let asked = || auth.answered.load(Ordering::SeqCst);
    assert_eq!(
        get_with(&client, "/private/a", "Bearer good").await.text(),
        "alice"
    );
    assert_eq!(
        get_with(&client, "/private/a", "Bearer good").await.text(),
        "alice"
    );
    assert_eq!(
        asked(),
        1,
        "the second allow came from the cache, variables included"
    );
    get_with(&client, "/private/b", "Bearer good").await;
    assert_eq!(asked(), 2, "another target is asked about");
    for _ in 0..2 {
        let denied = get_with(&client, "/private/a", "Bearer bad").await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(asked(), 4, "refusals are never remembered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    get_with(&client, "/private/a", "Bearer good").await;
    assert_eq!(asked(), 5, "an expired allow is asked about again");
}
