//! Unit tests of `builder.rs`.
use super::*;

fn idle(b: &FcgiServiceBuilder) -> (usize, usize) {
    let cfg = b.pool_config();
    (cfg.max_open, cfg.max_idle)
}

#[test]
fn max_idle_follows_max_connections_unless_set() {
    let b = FcgiServiceBuilder::new().max_connections(8);
    assert_eq!(idle(&b), (8, 8));
    let b = FcgiServiceBuilder::new().max_idle(2).max_connections(8);
    assert_eq!(idle(&b), (8, 2));
    let b = FcgiServiceBuilder::new()
        .max_connections(8)
        .max_idle(16)
        .max_connections(3);
    assert_eq!(idle(&b), (3, 3), "capped at max_connections");
}

#[test]
fn no_queue_or_connect_timeout_means_no_deadline() {
    let b = FcgiServiceBuilder::new()
        .queue_timeout(None)
        .connect_timeout(None);
    assert_eq!(
        (b.pool_config().queue_timeout, b.connect_timeout),
        (None, None)
    );
    let cfg = FcgiServiceBuilder::new()
        .queue_timeout(Duration::from_secs(2))
        .pool_config();
    assert_eq!(cfg.queue_timeout, Some(Duration::from_secs(2)));
}

fn build_error(b: FcgiServiceBuilder) -> String {
    match b.tcp("127.0.0.1:9").try_build() {
        Ok(service) => panic!("expected a BuildError, got {service:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn try_build_refuses_document_root_settings_without_a_root() {
    let msg = build_error(FcgiServiceBuilder::new().script_extensions(["cgi"]));
    assert!(
        msg.contains("script_extensions only apply in document-root mode"),
        "{msg}"
    );
    let msg = build_error(FcgiServiceBuilder::new().index_files(["doku.php"]));
    assert!(msg.contains("index_files"), "{msg}");
    let msg = build_error(FcgiServiceBuilder::new().any_file_is_a_script());
    assert!(msg.contains("any_file_is_a_script"), "{msg}");
    let msg = build_error(FcgiServiceBuilder::new().follow_symlinks_outside_root(true));
    assert!(msg.contains("follow_symlinks_outside_root"), "{msg}");
}

#[test]
fn try_build_refuses_application_settings_beside_a_root() {
    for b in [
        FcgiServiceBuilder::new().script_name("/app"),
        FcgiServiceBuilder::new().script_filename("/srv/index.php"),
        FcgiServiceBuilder::new().application_document_root("/srv"),
    ] {
        let msg = build_error(b.document_root("/srv"));
        assert!(msg.contains("use one mode"), "{msg}");
    }
}

#[test]
#[should_panic(expected = "index_files only apply in document-root mode")]
fn build_panics_with_the_build_error() {
    let _ = FcgiServiceBuilder::new()
        .tcp("127.0.0.1:9")
        .index_files(["index.php"])
        .build();
}

#[test]
#[should_panic(expected = "script_name (application mode) would be ignored")]
fn build_panics_on_both_modes() {
    let _ = FcgiServiceBuilder::new()
        .tcp("127.0.0.1:9")
        .script_name("/app")
        .document_root("/srv")
        .build();
}

#[test]
fn the_order_of_script_settings_does_not_matter() {
    let b = FcgiServiceBuilder::new()
        .index_files(["doku.php"])
        .document_root("/srv")
        .tcp("127.0.0.1:9");
    assert!(b.try_build().is_ok());
}
