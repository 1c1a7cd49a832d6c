//! FastCGI authorizers for `tests/authorize.rs`, all answering by one decision table:
//!
//! | `Authorization` | answer |
//! |---|---|
//! | `Bearer good` | `Status: 200`, `Variable-AUTH_USER: alice`, `Variable-X-Team: ops`, `Variable-SCRIPT_FILENAME: /etc/passwd` (must be refused), `X-Authorizer-Only: leak`, a body |
//! | `Bearer nostatus` | a head without Status (Perl and tokio-fastcgi only; WSGI always has one) |
//! | `Bearer empty` | no output at all (Perl and tokio-fastcgi only) |
//! | anything else | `Status: 401`, `WWW-Authenticate`, `X-Seen` (what the authorizer received), `Variable-AUTH_USER: leak`, body `denied REQUEST_URI` |
//!
//! flup (`authorizer.py`) and Perl FCGI (`authorizer.pl`) run as child processes on a Unix
//! socket in a temporary directory; the tokio-fastcgi one runs in the test's runtime.
//! The Filter-role applications of `tests/filter.rs` are in [`filters`].

pub mod filters;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio_fastcgi::{RequestResult, Requests, Role};

use super::process::{self, ProcessGroup};
use super::programs;

const FLUP_AUTHORIZER: &str = include_str!("authorizer.py");
const PERL_AUTHORIZER: &str = include_str!("authorizer.pl");

/// Which implementation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Flup,
    Perl,
    TokioFastcgi,
}

/// A running authorizer; dropping it stops it and removes its directory.
pub type Authorizer = RunningApp<Flavor>;

/// A running FastCGI application of the tests (an authorizer, a filter); dropping it
/// stops it and removes its directory.
pub struct RunningApp<F> {
    pub flavor: F,
    pub socket: PathBuf,
    /// Requests the tokio-fastcgi authorizer answered (0 for the others).
    pub answered: Arc<AtomicUsize>,
    group: Option<ProcessGroup>,
    task: Option<tokio::task::JoinHandle<()>>,
    // Dropped last: the process is gone before its directory is.
    dir: tempfile::TempDir,
}

impl<F> RunningApp<F> {
    /// A not yet started application with a fresh directory and `auth.sock` in it.
    pub(super) fn new(flavor: F, socket_name: &str) -> RunningApp<F> {
        let dir = tempfile::Builder::new()
            .prefix("fcgi-role-app-")
            .tempdir()
            .expect("a temporary directory");
        RunningApp {
            flavor,
            socket: dir.path().join(socket_name),
            answered: Arc::new(AtomicUsize::new(0)),
            group: None,
            task: None,
            dir,
        }
    }

    /// The application's private directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The address for an `FcgiService`.
    pub fn backend(&self) -> tower_fastcgi::Backend {
        tower_fastcgi::Backend::unix(&self.socket)
    }

    /// What the authorizer wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Stops it (its socket stays, refusing connections).
    pub fn stop(&mut self) {
        if let Some(mut group) = self.group.take() {
            group.stop();
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl<F> Drop for RunningApp<F> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `flavor`, or `None` (after the usual loud skip message) when its program is not
/// installed and `FCGI_INTEROP` is not `require`. Call inside a tokio runtime.
pub fn start_or_skip(flavor: Flavor) -> Option<Authorizer> {
    let mut authorizer = Authorizer::new(flavor, "auth.sock");
    let socket = authorizer.socket.clone();
    match flavor {
        Flavor::TokioFastcgi => {
            let listener = UnixListener::bind(&socket).expect("bind the authorizer socket");
            let answered = Arc::clone(&authorizer.answered);
            authorizer.task = Some(tokio::spawn(serve_tokio_fastcgi(listener, answered)));
            return Some(authorizer);
        }
        Flavor::Flup => {
            let flup = match programs::flup_location() {
                Ok(flup) => flup,
                Err(why) => return skip("flup", &why),
            };
            let script = authorizer.dir.path().join("authorizer.py");
            std::fs::write(&script, FLUP_AUTHORIZER).expect("write authorizer.py");
            let mut command = Command::new(&flup.python);
            command
                .arg(&script)
                .arg(format!("unix:{}", socket.display()));
            let env = [(
                "PYTHONPATH".to_owned(),
                flup.pythonpath.to_string_lossy().into_owned(),
            )];
            authorizer.spawn(&mut command, &env);
        }
        Flavor::Perl => {
            let probe = Command::new("perl").args(["-MFCGI", "-e", "1"]).status();
            if !probe.is_ok_and(|s| s.success()) {
                return skip(
                    "Perl FCGI",
                    "perl -MFCGI failed (apt-get install libfcgi-perl)",
                );
            }
            let script = authorizer.dir.path().join("authorizer.pl");
            std::fs::write(&script, PERL_AUTHORIZER).expect("write authorizer.pl");
            let mut command = Command::new("perl");
            command.arg(&script).arg(&socket);
            authorizer.spawn(&mut command, &[]);
        }
    }
    Some(authorizer)
}

impl<F> RunningApp<F> {
    /// Starts `command` in the application's directory and waits until it listens.
    pub(super) fn spawn(&mut self, command: &mut Command, env: &[(String, String)]) {
        let line = process::isolate(command, self.dir.path(), env);
        let group = ProcessGroup::spawn(command, &self.dir.path().join("stderr.log"))
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        self.group = Some(group);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "{line} did not listen on {}:\n{}",
                self.socket.display(),
                self.log()
            );
            assert!(
                !self.group.as_ref().is_some_and(ProcessGroup::leader_exited),
                "{line} exited:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Skips loudly (or fails, with `FCGI_INTEROP=require`) through the support tree's policy.
pub(super) fn skip<T>(name: &str, why: &str) -> Option<T> {
    let missing = std::path::Path::new("/nonexistent");
    assert!(!super::app_or_skip(name, missing, why));
    None
}

/// The tokio-fastcgi authorizer: one task per connection, the decision table above.
async fn serve_tokio_fastcgi(listener: UnixListener, answered: Arc<AtomicUsize>) {
    while let Ok((stream, _)) = listener.accept().await {
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let mut requests = Requests::new(read, write, 1, 1);
            while let Ok(Some(request)) = requests.next().await {
                let answered = Arc::clone(&answered);
                let _ = request
                    .process(|request| async move {
                        if request.role != Role::Authorizer {
                            return RequestResult::UnknownRole;
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                        let auth = request.get_str_param("HTTP_AUTHORIZATION").unwrap_or("");
                        let answer = tokio_fastcgi_answer(auth, &|name| {
                            request.get_str_param(name).map(str::to_owned)
                        });
                        let mut out = request.get_stdout();
                        if !answer.is_empty() && out.write(&answer).await.is_err() {
                            return RequestResult::Complete(1);
                        }
                        RequestResult::Complete(0)
                    })
                    .await;
            }
        });
    }
}

fn tokio_fastcgi_answer(auth: &str, param: &dyn Fn(&str) -> Option<String>) -> Vec<u8> {
    let has = |name: &str| if param(name).is_some() { "yes" } else { "no" };
    let uri = param("REQUEST_URI").unwrap_or_else(|| "-".into());
    match auth {
        "Bearer good" => b"Status: 200 OK\r\nVariable-AUTH_USER: alice\r\nVariable-X-Team: ops\r\n\
            Variable-SCRIPT_FILENAME: /etc/passwd\r\nX-Authorizer-Only: leak\r\n\r\n\
            the body of an allow, never seen"
            .to_vec(),
        "Bearer nostatus" => b"Variable-AUTH_USER: eve\r\n\r\n".to_vec(),
        "Bearer empty" => Vec::new(),
        _ => format!(
            "Status: 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"test\"\r\n\
             X-Seen: role={};cl={};sn={};pi={};uri={uri};auth={}\r\n\
             Variable-AUTH_USER: leak\r\nContent-Type: text/plain\r\n\r\ndenied {uri}",
            param("FCGI_ROLE").unwrap_or_else(|| "-".into()),
            has("CONTENT_LENGTH"),
            has("SCRIPT_NAME"),
            has("PATH_INFO"),
            param("HTTP_AUTHORIZATION").unwrap_or_else(|| "-".into()),
        )
        .into_bytes(),
    }
}
