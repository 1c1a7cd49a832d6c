//! The gateway's mount table (`examples/support/mounts.rs`) routes and strips exactly as an
//! axum `Router` with the same `nest_service`/`fallback_service` mounts does: every
//! request below is sent to both, and the URI, the `OriginalUri` and the mount that
//! answered must agree. The table replaced the router on the gateway's hot path, so this
//! is what keeps every mount kind seeing what it saw before.

#[path = "../examples/support/mount.rs"]
mod mount;
#[path = "../examples/support/mounts.rs"]
mod mounts;
#[path = "../examples/support/serve.rs"]
#[allow(dead_code)]
mod serve;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use mount::Attach;
use serve::Handler;

/// A mount that answers with its name, the URI it was given and the OriginalUri. An
/// absent OriginalUri is reported as the URI itself: that is what the crate reads when
/// there is none (`Mount::of`, the error hook), and the table leaves it out where axum's
/// router would insert a copy of the unchanged URI (the `""` mount), to save the work.
fn recorder(
    name: &'static str,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |req: Request| async move {
        let original = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().to_string(), |OriginalUri(u)| u.to_string());
        Ok::<_, Infallible>(format!("{name} {} {original}", req.uri()).into_response())
    })
}

fn build<A: Attach>(mut app: A, with_fallback: bool) -> A {
    app = app.attach("/a", recorder("a"));
    app = app.attach("/a/b", recorder("ab"));
    app = app.attach("/php", recorder("php"));
    if with_fallback {
        app = app.attach("", recorder("root"));
    }
    app
}

async fn answer<H: Handler>(app: &H, uri: &str) -> (u16, String) {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let res = app.handle(req).await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const URIS: &[&str] = &[
    "/",
    "/a",
    "/a/",
    "/a/x",
    "/a/x/y?q=1&r",
    "/a?only=query",
    "/ab",
    "/abc/d",
    "/a/b",
    "/a/b/",
    "/a/b/c?z",
    "/a/bc",
    "/php/index.php/extra?x=%2F",
    "/php//double",
    "/php///triple",
    "/a//",
    "/PHP/x",
    "/other/x",
    "/a/%62/c",
    "http://example.com/a/x?q",
];

#[tokio::test]
async fn the_mount_table_routes_and_strips_as_axum_nest_service_does() {
    for with_fallback in [true, false] {
        let table = build(mounts::Mounts::new(), with_fallback);
        let router = build(Router::new(), with_fallback);
        for uri in URIS {
            let ours = answer(&table, uri).await;
            let axum = answer(&router, uri).await;
            assert_eq!(ours, axum, "{uri} (fallback: {with_fallback})");
        }
    }
}

#[tokio::test]
async fn the_longest_prefix_wins_whatever_the_order_mounts_were_given() {
    let table = mounts::Mounts::new()
        .attach("/a/b", recorder("ab"))
        .attach("/a", recorder("a"));
    assert_eq!(answer(&table, "/a/b/c").await.1, "ab /c /a/b/c");
    assert_eq!(answer(&table, "/a/bc").await.1, "a /bc /a/bc");
    assert_eq!(answer(&table, "/z").await.0, 404);
}
