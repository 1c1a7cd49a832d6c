//! flup's `WSGIServer` running `tests/fixtures/wsgi_app.py` (a copy in the document root):
//! one application that routes on PATH_INFO, optionally multiplexed.
//!
//! [`Options::multiplexed`](super::Options::multiplexed) starts `WSGIServer(app,
//! multiplexed=True)`: every request of a connection runs in a thread of its own (flup
//! 1.0.3 does this on Python 3 too). Its quirks, pinned by `tests/mux_backends.rs`: it
//! answers FCGI_GET_VALUES with an empty result (a bytes/str bug), so a client must force
//! multiplexing on; and it ignores FCGI_ABORT_REQUEST (a request aborted during STDIN is
//! never ended). `/slow?ms=N&tag=T` answers `slow tag=T ms=N pid=P` after N ms.
//!
//! ```ignore
//! let options = Options::default().multiplexed(true);
//! let Some(flup) = support::backend_or_skip_with(Kind::FlupUnix, options) else { return };
//! // Force multiplexing on in the builder: GET_VALUES cannot tell.
//! let svc = FcgiService::builder().backend(flup.fcgi_backend()).build();
//! ```

use std::process::Command;

use super::{Addr, Launch};
use crate::support::programs;

/// Fewer spare threads than this make flup queue new connections behind kept-alive ones.
const MIN_SPARE_THREADS: usize = 16;

/// Adds the script and its arguments; PYTHONPATH points at the flup that was found, so a
/// `pip install --user` still works with the backend's private HOME.
pub(super) fn configure(
    launch: &Launch<'_>,
    command: &mut Command,
) -> Result<Vec<(String, String)>, String> {
    let flup = programs::flup_location().map_err(|e| format!("flup vanished: {e}"))?;
    let env = vec![
        (
            "PYTHONPATH".into(),
            flup.pythonpath.to_string_lossy().into_owned(),
        ),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ];
    let spare = launch.options.workers.max(MIN_SPARE_THREADS);
    command
        .arg("-u")
        .arg(launch.document_root.join("wsgi_app.py"))
        .arg(match launch.addr {
            Addr::Tcp(addr) => addr.to_string(),
            Addr::Unix(path) => format!("unix:{}", path.display()),
        })
        .arg("--min-spare")
        .arg(spare.to_string())
        .arg("--max-spare")
        .arg((spare * 2).to_string());
    if launch.options.multiplexed {
        command.arg("--multiplexed");
    }
    Ok(env)
}
