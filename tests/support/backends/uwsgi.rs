//! uWSGI (Debian `uwsgi-core` + `uwsgi-plugin-python3`) serving `wsgi_app.py` on an SCGI
//! or a uwsgi socket; started through [`StreamServer`](super::scgi::StreamServer).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::StartError;

const UWSGI: &str = "/usr/bin/uwsgi";
const PYTHON3_PLUGIN: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";

/// `uwsgi --plugin python3 --wsgi-file APP --callable app --master --processes 2 SOCKET ADDR`.
pub(super) fn command(
    app: &Path,
    addr: SocketAddr,
    socket_option: &str,
) -> Result<(Command, Vec<(String, String)>), StartError> {
    for needed in [UWSGI, PYTHON3_PLUGIN] {
        if !Path::new(needed).exists() {
            return Err(StartError::Missing(format!(
                "{needed} (apt-get install uwsgi-core uwsgi-plugin-python3)"
            )));
        }
    }
    let mut command = Command::new(UWSGI);
    command
        .args(["--plugin", "python3", "--wsgi-file"])
        .arg(app)
        .args(["--callable", "app", "--master", "--processes", "2"])
        .arg(socket_option)
        .arg(addr.to_string())
        // SIGTERM stops rather than reloads (uWSGI 2.0's default is a reload).
        .arg("--die-on-term")
        // The env checks send more header bytes than uWSGI's 4 KiB default takes.
        .args(["--buffer-size", "32768", "--need-app", "--disable-logging"]);
    Ok((command, Vec::new()))
}
