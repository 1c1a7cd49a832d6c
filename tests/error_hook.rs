//! The error hook (`on_error`): what it sees (the request's parts with axum's
//! `OriginalUri`), what reaches it (crate errors always; backend error statuses and the
//! crate's 404s only when asked; directory redirects never), and falling back to the
//! default response. Against the in-repo responder.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::fake::*;
use tower::{Service, ServiceExt};
use tower_fastcgi::{Backend, Cause, Failure, FcgiBody, FcgiService, PhpSite};

/// A page naming the status, the URI the client asked for and the one the service got.
fn page(failure: &Failure<'_>) -> Response<FcgiBody> {
    let mut res = Response::new(FcgiBody::full(format!(
        "custom {} for {} (service saw {})",
        failure.status().as_u16(),
        failure.original_uri(),
        failure.request.uri
    )));
    *res.status_mut() = failure.status();
    res
}

async fn text(res: axum::response::Response) -> String {
    String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

async fn call(app: &Router, uri: &str) -> axum::response::Response {
    let req = Request::get(uri).body(axum::body::Body::empty()).unwrap();
    app.clone().oneshot(req).await.unwrap()
}

/// A backend address nothing listens on.
fn nowhere() -> (tempfile::TempDir, Backend) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::unix(dir.path().join("nobody.sock"));
    (dir, backend)
}

/// A document root with a directory (`/docs/`) and a script.
fn tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("docs")).unwrap();
    std::fs::write(root.path().join("docs/index.php"), "<?php").unwrap();
    std::fs::write(root.path().join("status.php"), "<?php").unwrap();
    root
}

#[tokio::test]
async fn a_custom_page_sees_the_original_uri_under_nest_service() {
    let (_dir, backend) = nowhere();
    let svc = FcgiService::builder()
        .backend(backend)
        .on_error(|f| Some(page(f)))
        .build();
    let app = Router::new().nest_service("/fcgi-test", svc);
    let res = call(&app, "/fcgi-test/x?y=1").await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        text(res).await,
        "custom 502 for /fcgi-test/x?y=1 (service saw /x?y=1)"
    );

    // A PhpSite's own 404, when asked for, sees it too.
    let root = tree();
    let fake = fake(|req, w| answer(req, w, "Content-Type: text/plain", b"ok")).await;
    let backend = fake.backend.clone();
    let site = PhpSite::builder()
        .root(root.path())
        .fastcgi(move |b| b.backend(backend))
        .front_controller(None)
        .on_error(|f| Some(page(f)))
        .intercept_not_found(true)
        .build();
    let app = Router::new().nest_service("/blog", site);
    let res = call(&app, "/blog/missing").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        text(res).await,
        "custom 404 for /blog/missing (service saw /missing)"
    );
    assert_eq!(fake.connections(), 0);
}

#[tokio::test]
async fn a_directory_redirect_under_a_custom_error_page_keeps_its_location() {
    let root = tree();
    let fake = fake(|req, w| answer(req, w, "Status: 500 Oops", b"php's page")).await;
    let backend = fake.backend.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let site = PhpSite::builder()
        .root(root.path())
        .fastcgi(move |b| b.backend(backend))
        .on_error(move |f| {
            seen.fetch_add(1, Ordering::SeqCst);
            Some(page(f))
        })
        .intercept_errors(true)
        .intercept_not_found(true)
        .build();
    let app = Router::new().nest_service("/blog", site);
    let res = call(&app, "/blog/docs?x=1").await;
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()["location"], "/blog/docs/?x=1");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a redirect is not an error"
    );
    // The backend's 500 does reach it.
    let res = call(&app, "/blog/status.php").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        text(res).await,
        "custom 500 for /blog/status.php (service saw /status.php)"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_hook_can_fall_back_to_the_default_response() {
    let fake = fake(|req, w| async move {
        match req.param("PATH_INFO") {
            "/teapot" => answer(req, w, "Status: 418 Teapot", b"php's teapot").await,
            _ => answer(req, w, "Status: 404 Not Found", b"php's 404").await,
        }
    })
    .await;
    // Only 404s get the custom page; everything else keeps its default.
    let only_404 = |f: &Failure<'_>| (f.status() == StatusCode::NOT_FOUND).then(|| page(f));
    let svc = fake
        .builder()
        .on_error(only_404)
        .intercept_errors(true)
        .build();
    let res = send(&svc, get("/teapot")).await;
    assert_eq!(res.status().as_u16(), 418);
    assert_eq!(&body(res).await.unwrap()[..], b"php's teapot");
    let res = send(&svc, get("/other")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        &body(res).await.unwrap()[..],
        b"custom 404 for /other (service saw /other)"
    );

    // The crate's own error: the default is the plain-text status line.
    let (_dir, backend) = nowhere();
    let svc = FcgiService::builder()
        .backend(backend)
        .on_error(only_404)
        .build();
    let res = send(&svc, get("/x")).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(&body(res).await.unwrap()[..], b"502 Bad Gateway\n");
}

#[tokio::test]
async fn backend_statuses_and_not_founds_reach_the_hook_only_when_asked() {
    let root = tree();
    let fake = fake(|req, w| answer(req, w, "Status: 503 Busy", b"php's page")).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = |calls: &Arc<AtomicUsize>| {
        let calls = Arc::clone(calls);
        move |f: &Failure<'_>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Some(page(f))
        }
    };
    let svc = fake
        .builder()
        .document_root(root.path())
        .on_error(counting(&calls))
        .build();
    let res = send(&svc, get("/status.php")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(&body(res).await.unwrap()[..], b"php's page");
    let res = send(&svc, get("/missing.php")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(&body(res).await.unwrap()[..], b"404 Not Found\n");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let svc = fake
        .builder()
        .document_root(root.path())
        .on_error(counting(&calls))
        .intercept_errors(true)
        .intercept_not_found(true)
        .build();
    let res = send(&svc, get("/status.php")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        &body(res).await.unwrap()[..],
        b"custom 503 for /status.php (service saw /status.php)"
    );
    let res = send(&svc, get("/missing.php")).await;
    assert_eq!(
        &body(res).await.unwrap()[..],
        b"custom 404 for /missing.php (service saw /missing.php)"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The discarded backend body did not cost the connection: one per service.
    let res = send(&svc, get("/status.php")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    body(res).await.unwrap();
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn fallible_returns_the_error_and_skips_the_hook() {
    let (_dir, backend) = nowhere();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let root = tree();
    let svc = FcgiService::builder()
        .backend(backend)
        .document_root(root.path())
        .on_error(move |f| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert!(matches!(f.cause, Cause::Error(_)));
            Some(page(f))
        })
        .intercept_not_found(true)
        .build();
    let mut fallible = svc.clone().fallible();
    let err = fallible.call(get("/status.php")).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    // Not-founds and redirects are values, not errors, on this path too.
    let res = svc.try_call(get("/missing.php")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = svc.try_call(get("/docs")).await.unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()["location"], "/docs/");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The infallible service runs it.
    let res = send(&svc, get("/status.php")).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
