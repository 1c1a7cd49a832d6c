//! Document roots for the real backends: a private copy of `tests/fixtures` per backend
//! (so a test may add or change scripts without disturbing the others), and scripts a
//! test writes for itself.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::programs::Program;

/// `tests/fixtures` in the source tree.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Copies the fixtures `program` serves into `root` (created if needed): the PHP scripts
/// of `fixtures/php`, the shell scripts of `fixtures/cgi`, or `wsgi_app.py` for flup.
pub fn install(program: Program, root: &Path) -> Result<(), String> {
    let fixtures = source_dir();
    fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let copy = |from: &Path, mode: u32| -> Result<(), String> {
        let name = from
            .file_name()
            .ok_or_else(|| format!("bad fixture path {}", from.display()))?;
        let to = root.join(name);
        fs::copy(from, &to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        set_mode(&to, mode)
    };
    match program {
        Program::Flup => copy(&fixtures.join("wsgi_app.py"), 0o644),
        Program::PhpFpm | Program::PhpCgi | Program::Fcgiwrap => {
            let sub = if program == Program::Fcgiwrap {
                "cgi"
            } else {
                "php"
            };
            let from = fixtures.join(sub);
            let entries =
                fs::read_dir(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
            for entry in entries {
                let path = entry
                    .map_err(|e| format!("cannot read {}: {e}", from.display()))?
                    .path();
                // Executable bits are set here, so a checkout without them still works.
                let mode = if path.extension().is_some_and(|ext| ext == "cgi") {
                    0o755
                } else {
                    0o644
                };
                copy(&path, mode)?;
            }
            Ok(())
        }
    }
}

/// Writes `contents` to `name` under `root` (creating directories; mode 0755 for `.cgi`
/// and `.sh`) and returns its path. Panics on failure: only tests call it.
pub fn write_script(root: &Path, name: &str, contents: &str) -> PathBuf {
    let path = root.join(name.trim_start_matches('/'));
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    if name.ends_with(".cgi") || name.ends_with(".sh") {
        set_mode(&path, 0o755).unwrap_or_else(|e| panic!("{e}"));
    }
    path
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}
