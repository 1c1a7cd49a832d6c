//! What an authorizer grants: its `Variable-NAME: value` fields, checked and named as CGI
//! variables, for native handlers (a typed request extension) and for the crate's own
//! connectors behind the layer (merged into [`RequestParams`]).

use bytes::Bytes;
use http::Extensions;

use crate::RequestParams;

/// Longest variable name kept (longer ones are refused: no legitimate CGI name needs it).
const MAX_NAME_LEN: usize = 128;

/// Names the gateway itself computes, or that change how a backend runs, refused from an
/// authorizer whatever their case: a granted variable adds to the environment, it never
/// replaces what the gateway says about the request (`SCRIPT_FILENAME`, `REMOTE_ADDR`,
/// ...) nor configures the backend (php-fpm reads `PHP_VALUE`/`PHP_ADMIN_VALUE`).
const RESERVED: &[&str] = &[
    "GATEWAY_INTERFACE",
    "HTTPS",
    "QUERY_STRING",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_HOST",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "REDIRECT_STATUS",
    "REDIRECT_URL",
];

/// Prefixes of whole families the gateway owns: `HTTP_*` are the client's header fields,
/// the others are the server, request, script and document variables, FastCGI's own
/// (`FCGI_ROLE`) and PHP's settings.
const RESERVED_PREFIXES: &[&str] = &[
    "HTTP_",
    "SERVER_",
    "REQUEST_",
    "SCRIPT_",
    "DOCUMENT_",
    "FCGI_",
    "PHP_",
];

/// The variables a FastCGI authorizer granted with its 200 answer, one per
/// `Variable-NAME: value` field, as a request extension that
/// [`FcgiAuthorizer`](crate::FcgiAuthorizer) inserts before calling the service behind it.
///
/// A name is kept exactly as the authorizer wrote it, except that `-` becomes `_`
/// (lighttpd's mapping): `Variable-AUTH_USER: alice` is `AUTH_USER`, `Variable-X-Team:
/// ops` is `X_Team`. Names that are not CGI names (letters, digits and `_`, not starting
/// with a digit) and names the gateway computes itself (see the module docs) are dropped
/// with a warning; of two fields with the same name the first is kept.
///
/// ```
/// # use tower_fastcgi::AuthorizerVariables;
/// async fn handler(req: http::Request<axum::body::Body>) -> String {
///     let vars = req.extensions().get::<AuthorizerVariables>();
///     let user = vars.and_then(|v| v.get("AUTH_USER")).unwrap_or("nobody");
///     format!("hello {user}")
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerVariables {
    vars: Vec<(String, Bytes)>,
}

impl AuthorizerVariables {
    /// The value of `name` (case-sensitive, as written by the authorizer), if it is UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The raw value of `name` (case-sensitive).
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Every variable in the order the authorizer sent them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_ref()))
    }

    /// How many variables were granted.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable was granted.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The variables of an authorizer's head (names after `Variable-`, as written).
    pub(crate) fn from_head(raw: Vec<(Bytes, Bytes)>) -> AuthorizerVariables {
        let mut vars: Vec<(String, Bytes)> = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let Some(name) = cgi_name(&name) else {
                tracing::warn!(
                    name = %String::from_utf8_lossy(&name),
                    "dropping an authorizer variable whose name is not a CGI name, or one the gateway sets itself"
                );
                continue;
            };
            if vars.iter().any(|(n, _)| *n == name) {
                tracing::warn!(
                    name,
                    "dropping a repeated authorizer variable (the first is kept)"
                );
                continue;
            }
            vars.push((name, value));
        }
        AuthorizerVariables { vars }
    }

    /// Puts the variables on a request: as this extension, and as CGI parameters for the
    /// crate's connectors, where [`RequestParams`] set by the application before the
    /// layer keep their values (trusted code asked for them explicitly).
    pub(crate) fn apply(self, extensions: &mut Extensions) {
        if !self.vars.is_empty() {
            let mut params = extensions.remove::<RequestParams>().unwrap_or_default();
            for (name, value) in &self.vars {
                if params.iter().any(|(n, _)| n == name) {
                    tracing::debug!(
                        name,
                        "an authorizer variable is already a RequestParams entry; keeping that"
                    );
                    continue;
                }
                params.insert(name.clone(), value.to_vec());
            }
            extensions.insert(params);
        }
        extensions.insert(self);
    }
}

/// The CGI name of an authorizer variable, or `None` if it cannot be one.
fn cgi_name(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_NAME_LEN || raw.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut name = String::with_capacity(raw.len());
    for &b in raw {
        match b {
            b'-' => name.push('_'),
            b'_' => name.push('_'),
            b if b.is_ascii_alphanumeric() => name.push(char::from(b)),
            _ => return None,
        }
    }
    let reserved = RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&name))
        || RESERVED_PREFIXES.iter().any(|p| {
            name.get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p))
        });
    (!reserved).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> AuthorizerVariables {
        AuthorizerVariables::from_head(
            pairs
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::copy_from_slice(n.as_bytes()),
                        Bytes::copy_from_slice(v.as_bytes()),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn names_keep_their_case_and_dashes_become_underscores() {
        let v = vars(&[
            ("AUTH_USER", "alice"),
            ("X-Team", "ops"),
            ("remote_user", "a"),
        ]);
        assert_eq!(v.get("AUTH_USER"), Some("alice"));
        assert_eq!(v.get("X_Team"), Some("ops"));
        assert_eq!(v.get("remote_user"), Some("a"));
        assert_eq!(v.get("auth_user"), None);
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn gateway_variables_and_non_cgi_names_are_refused() {
        let v = vars(&[
            ("SCRIPT_FILENAME", "/etc/passwd"),
            ("document_root", "/"),
            ("Remote-Addr", "10.0.0.1"),
            ("HTTP_HOST", "evil"),
            ("PHP_ADMIN_VALUE", "auto_prepend_file=/tmp/x"),
            ("FCGI_ROLE", "RESPONDER"),
            ("1ABC", "x"),
            ("A B", "x"),
            ("A.B", "x"),
            ("REMOTE_USER", "alice"),
            ("AUTH_TYPE", "Basic"),
        ]);
        let names: Vec<&str> = v.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["REMOTE_USER", "AUTH_TYPE"]);
    }

    #[test]
    fn the_first_of_repeated_names_wins_and_request_params_are_kept() {
        let v = vars(&[
            ("ROLE", "admin"),
            ("ROLE", "guest"),
            ("REMOTE_USER", "alice"),
        ]);
        assert_eq!(v.get("ROLE"), Some("admin"));
        let mut ext = Extensions::new();
        let mut set_by_app = RequestParams::new();
        set_by_app.insert("REMOTE_USER", "bob");
        ext.insert(set_by_app);
        v.clone().apply(&mut ext);
        let params: Vec<(&str, &[u8])> = ext.get::<RequestParams>().unwrap().iter().collect();
        assert_eq!(
            params,
            [("REMOTE_USER", &b"bob"[..]), ("ROLE", &b"admin"[..])]
        );
        assert_eq!(ext.get::<AuthorizerVariables>(), Some(&v));
    }
}
