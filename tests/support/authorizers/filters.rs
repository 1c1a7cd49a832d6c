//! Filter-role applications for `tests/filter.rs`, both upper-casing FCGI_DATA (ASCII)
//! into STDOUT after a head reporting what they were told (`X-Data-Length`,
//! `X-Data-Last-Mod`, `X-Script-Name`, `X-Script-Filename`, `X-Role`, `X-Stdin`):
//!
//! - flup (`filter.py`), a child process;
//! - tokio-fastcgi, in a child process too: the test binary runs itself with
//!   `FCGI_FILTER_SOCKET` set and only the test that calls [`serve_tokio_fastcgi_child`].
//!   tokio-fastcgi holds a whole data stream in memory before it calls the application,
//!   and the memory test measures the gateway's process alone.

use std::io::Read;
use std::process::Command;

use tokio::net::UnixListener;
use tokio_fastcgi::{RequestResult, Requests, Role};

use super::{RunningApp, skip};
use crate::support::programs;

const FLUP_FILTER: &str = include_str!("filter.py");

/// The environment variable that makes the test binary a tokio-fastcgi filter.
pub const CHILD_SOCKET_VAR: &str = "FCGI_FILTER_SOCKET";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterFlavor {
    Flup,
    TokioFastcgi,
}

pub type Filter = RunningApp<FilterFlavor>;

/// Starts a filter; `child_test` is the name of the test that calls
/// [`serve_tokio_fastcgi_child`] (for the tokio-fastcgi flavor).
pub fn start_filter_or_skip(flavor: FilterFlavor, child_test: &str) -> Option<Filter> {
    let mut app = Filter::new(flavor, "filter.sock");
    let socket = app.socket.clone();
    match flavor {
        FilterFlavor::Flup => {
            let flup = match programs::flup_location() {
                Ok(flup) => flup,
                Err(why) => return skip("flup", &why),
            };
            let script = app.dir().join("filter.py");
            std::fs::write(&script, FLUP_FILTER).expect("write filter.py");
            let mut command = Command::new(&flup.python);
            command.arg(&script).arg(&socket);
            let env = [(
                "PYTHONPATH".to_owned(),
                flup.pythonpath.to_string_lossy().into_owned(),
            )];
            app.spawn(&mut command, &env);
        }
        FilterFlavor::TokioFastcgi => {
            let exe = std::env::current_exe().expect("the test binary");
            let mut command = Command::new(exe);
            command.args([child_test, "--exact", "--nocapture", "--test-threads=1"]);
            let env = [(
                CHILD_SOCKET_VAR.to_owned(),
                socket.to_string_lossy().into_owned(),
            )];
            app.spawn(&mut command, &env);
        }
    }
    Some(app)
}

/// In the child process: serves the tokio-fastcgi filter on the socket named by
/// [`CHILD_SOCKET_VAR`] until killed. Returns at once in an ordinary test run.
pub fn serve_tokio_fastcgi_child() {
    let Ok(path) = std::env::var(CHILD_SOCKET_VAR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = UnixListener::bind(&path).expect("bind the filter socket");
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                let mut requests = Requests::new(read, write, 1, 1);
                while let Ok(Some(request)) = requests.next().await {
                    let _ = request.process(filter_one).await;
                }
            });
        }
    });
}

async fn filter_one(
    request: std::sync::Arc<tokio_fastcgi::Request<tokio::net::unix::OwnedWriteHalf>>,
) -> RequestResult {
    if request.role != Role::Filter {
        return RequestResult::UnknownRole;
    }
    let param = |name: &str| request.get_str_param(name).unwrap_or("-").to_owned();
    let mut stdin = String::new();
    let _ = request.get_stdin().read_to_string(&mut stdin);
    let head = format!(
        "Status: 200 OK\r\nContent-Type: application/octet-stream\r\nX-Data-Length: {}\r\n\
         X-Data-Last-Mod: {}\r\nX-Script-Name: {}\r\nX-Script-Filename: {}\r\nX-Role: {}\r\n\
         X-Stdin: {stdin}\r\n\r\n",
        param("FCGI_DATA_LENGTH"),
        param("FCGI_DATA_LAST_MOD"),
        param("SCRIPT_NAME"),
        param("SCRIPT_FILENAME"),
        param("FCGI_ROLE"),
    );
    let mut out = request.get_stdout();
    if out.write(head.as_bytes()).await.is_err() {
        return RequestResult::Complete(1);
    }
    let mut data = request.get_data();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match data.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let upper = chunk[..n].to_ascii_uppercase();
        if out.write(&upper).await.is_err() {
            return RequestResult::Complete(1);
        }
    }
    RequestResult::Complete(0)
}
