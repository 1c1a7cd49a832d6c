//! Keeps the builder's documentation true: the defaults table on `FcgiServiceBuilder` and
//! the "Default:" sentence of every setter are read from the source and compared with
//! [`crate::defaults`].
//!
//! Why parse instead of generate: rustdoc cannot format a `const` into a doc string
//! (`concat!` takes literals only), and a build script that writes the table would hide
//! it from readers of the source. Reading `builder.rs` in a test keeps the table plain
//! Markdown and still fails the build when a value and its documentation part ways.

use std::collections::BTreeMap;

use crate::client::upload::UnknownLengthBody;
use crate::defaults::{self, render_size, render_switch, render_timeout};

/// The builder's source: the table and most setters, then the limits and the fleet
/// setters.
const SOURCE: &str = concat!(
    include_str!("builder.rs"),
    include_str!("builder_limits.rs"),
    include_str!("builder_fleet.rs"),
    include_str!("builder_health.rs"),
    include_str!("builder_discover.rs")
);

/// How the docs must state each setting's default, rendered from the constants.
fn expected() -> BTreeMap<&'static str, String> {
    let spool = match UnknownLengthBody::default() {
        UnknownLengthBody::Spool { memory, dir: None } => {
            format!("spool: {} in memory", render_size(memory as u64))
        }
        other => format!("{other:?}"),
    };
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    BTreeMap::from([
        ("max_connections", defaults::MAX_CONNECTIONS.to_string()),
        ("max_idle", "= `max_connections`".to_owned()),
        (
            "multiplex",
            if defaults::MULTIPLEX_AUTO {
                "auto"
            } else {
                "off"
            }
            .to_owned(),
        ),
        (
            "multiplex_buffer",
            render_size(defaults::MULTIPLEX_BUFFER as u64),
        ),
        ("multiplex_spill", render_size(defaults::MULTIPLEX_SPILL)),
        ("idle_timeout", render_timeout(defaults::IDLE_TIMEOUT)),
        (
            "max_requests_per_connection",
            match defaults::MAX_REQUESTS_PER_CONNECTION {
                None => "unlimited".to_owned(),
                Some(n) => n.to_string(),
            },
        ),
        ("keep_alive", render_switch(defaults::KEEP_ALIVE)),
        ("queue_timeout", render_timeout(defaults::QUEUE_TIMEOUT)),
        ("connect_timeout", render_timeout(defaults::CONNECT_TIMEOUT)),
        (
            "response_head_timeout",
            render_timeout(defaults::RESPONSE_HEAD_TIMEOUT),
        ),
        ("read_timeout", render_timeout(defaults::READ_TIMEOUT)),
        ("write_timeout", render_timeout(defaults::WRITE_TIMEOUT)),
        ("total_timeout", render_timeout(defaults::TOTAL_TIMEOUT)),
        ("max_request_body", render_size(defaults::MAX_REQUEST_BODY)),
        ("unknown_length_body", spool),
        (
            "max_response_head",
            render_size(defaults::MAX_RESPONSE_HEAD as u64),
        ),
        (
            "max_params_size",
            render_size(defaults::MAX_PARAMS_SIZE as u64),
        ),
        ("server_software", "`tower-fastcgi/<version>`".to_owned()),
        (
            "pass_authorization",
            render_switch(defaults::PASS_AUTHORIZATION),
        ),
        (
            "underscores_in_headers",
            render_switch(defaults::UNDERSCORES_IN_HEADERS),
        ),
        ("redirect_status", render_switch(defaults::REDIRECT_STATUS)),
        (
            "stderr_log_limit",
            render_size(defaults::STDERR_LOG_LIMIT as u64),
        ),
        ("local_redirects", render_switch(defaults::LOCAL_REDIRECTS)),
        ("on_error", "none".to_owned()),
        (
            "intercept_errors",
            render_switch(defaults::INTERCEPT_ERRORS),
        ),
        (
            "intercept_not_found",
            render_switch(defaults::INTERCEPT_NOT_FOUND),
        ),
        ("document_root", "off".to_owned()),
        ("backends", "one backend".to_owned()),
        ("backend_max_connections", "= `max_connections`".to_owned()),
        (
            "eject_after_failures",
            defaults::EJECT_AFTER_FAILURES.to_string(),
        ),
        (
            "ejection_backoff",
            format!(
                "{}, doubling up to {}",
                render_timeout(Some(defaults::EJECTION_BACKOFF)),
                render_timeout(Some(defaults::EJECTION_BACKOFF_MAX))
            ),
        ),
        (
            "retry_budget",
            format!(
                "{}% of successful requests + {}/s",
                defaults::RETRY_BUDGET_PERCENT,
                defaults::RETRY_BUDGET_MIN_PER_SEC
            ),
        ),
        (
            "retry_non_idempotent",
            render_switch(defaults::RETRY_NON_IDEMPOTENT),
        ),
        ("health_check", "off".to_owned()),
        ("unserved_after", render_timeout(defaults::UNSERVED_AFTER)),
        ("discover", "none".to_owned()),
        (
            "resolve_every",
            defaults::RESOLVE_EVERY.map_or("off".to_owned(), |d| render_timeout(Some(d))),
        ),
        ("resolver", "the system resolver".to_owned()),
        ("script_extensions", list(defaults::SCRIPT_EXTENSIONS)),
        ("index_files", list(defaults::INDEX_FILES)),
        (
            "follow_symlinks_outside_root",
            render_switch(defaults::FOLLOW_SYMLINKS_OUTSIDE_ROOT),
        ),
    ])
}

/// `(setting, default cell)` for each table row that links a setter.
fn table_rows() -> Vec<(String, String)> {
    SOURCE
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("/// | [`"))
        .filter_map(|row| {
            let (name, rest) = row.split_once("`](FcgiServiceBuilder::")?;
            let (_, cell) = rest.split_once(") | ")?;
            Some((name.to_owned(), cell.trim_end_matches(" |").to_owned()))
        })
        .collect()
}

/// `(setter, its doc comment)` for every `pub fn` of the builder.
fn setter_docs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut doc = String::new();
    for line in SOURCE.lines().map(str::trim_start) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push_str(text.trim());
            doc.push(' ');
        } else if let Some(sig) = line.strip_prefix("pub fn ") {
            let name: String = sig
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((name, std::mem::take(&mut doc)));
        } else if !line.starts_with("#[") {
            doc.clear();
        }
    }
    out
}

#[test]
fn the_defaults_table_matches_the_defaults_module() {
    let expected = expected();
    let rows = table_rows();
    assert!(rows.len() >= 20, "table not found: {rows:?}");
    for (name, cell) in &rows {
        let Some(want) = expected.get(name.as_str()) else {
            panic!("table row {name:?} has no expected default in this test");
        };
        assert!(
            cell.starts_with(want.as_str()),
            "table says {name} = {cell:?}, the code says {want:?}"
        );
    }
    for name in expected.keys() {
        assert!(
            rows.iter().any(|(n, _)| n == name),
            "{name} is missing from the table"
        );
    }
}

#[test]
fn every_setter_states_its_default() {
    let expected = expected();
    // The backend is required, and building is not a setting.
    let exempt = [
        "tcp",
        "unix",
        "backend",
        "backends",
        "add_backend",
        // HealthCheck's constructors: the probe kind is the value, not a setting.
        "get_values",
        "ping",
        "build",
        "try_build",
    ];
    let docs = setter_docs();
    assert!(docs.len() >= 30, "setters not found: {docs:?}");
    for (name, doc) in docs {
        if exempt.contains(&name.as_str()) {
            continue;
        }
        assert!(
            doc.contains("Default: "),
            "{name}'s doc does not state its default: {doc}"
        );
        if let Some(want) = expected.get(name.as_str()) {
            assert!(
                doc.contains(&format!("Default: {want}")),
                "{name}'s doc does not say \"Default: {want}\": {doc}"
            );
        }
    }
}

#[test]
fn server_software_names_the_crate_and_version() {
    assert_eq!(
        defaults::SERVER_SOFTWARE,
        format!("tower-fastcgi/{}", env!("CARGO_PKG_VERSION"))
    );
}
