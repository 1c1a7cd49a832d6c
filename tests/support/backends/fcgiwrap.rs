//! fcgiwrap running the shell scripts of `tests/fixtures/cgi` named by SCRIPT_FILENAME.

use std::process::Command;

use super::{Addr, Launch};

/// Adds the socket, the worker count and (by default) `-f`, which sends the scripts'
/// stderr as FCGI_STDERR instead of to fcgiwrap's own stderr.
pub(super) fn configure(
    launch: &Launch<'_>,
    command: &mut Command,
) -> Result<Vec<(String, String)>, String> {
    let options = launch.options;
    if options.cgi_stderr_over_fcgi {
        command.arg("-f");
    }
    command
        .arg("-c")
        .arg(options.workers.max(1).to_string())
        .arg("-s")
        .arg(match launch.addr {
            Addr::Tcp(addr) => format!("tcp:{addr}"),
            Addr::Unix(path) => format!("unix:{}", path.display()),
        });
    Ok(Vec::new())
}
