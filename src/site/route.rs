//! Where a request to the site goes: private paths, scripts, files, directories, the
//! front controller. Asked by the redirect loop for the request and for every local
//! redirect, so a redirected path obeys the same rules.

use std::future::Future;
use std::path::PathBuf;

use http::Response;
use http::request::Parts;

use super::SiteInner;
use crate::body::FcgiBody;
use crate::cgi::env::Script;
use crate::cgi::path::{CleanPath, Lookup};
use crate::cgi::route::script_under_root;
use crate::cgi::{CgiConfig, Mount, Route};
use crate::error::Error;
use crate::service::redirect::Router;

impl Router for SiteInner {
    fn route<'a>(&'a self, _cfg: &'a CgiConfig, parts: &'a Parts) -> Result<Route<'a>, Error> {
        let mount = Mount::of(parts);
        let clean = mount.clean_rest()?;
        if let Some(reason) = self.denied(&clean) {
            tracing::info!(path = %String::from_utf8_lossy(clean.bytes()), reason, "refusing a private path");
            return Ok(Route::NotFound(reason));
        }
        Ok(match self.root.lookup(&clean) {
            Lookup::Script {
                script,
                path_info,
                filename,
            } => Route::Script(script_under_root(
                &self.root, mount, script, path_info, filename,
            )?),
            Lookup::File(file) => Route::File(file),
            Lookup::DirectoryWithoutSlash => Route::Redirect(mount.with_trailing_slash()),
            // `/uploads/x.jpg/a.php`: a script name after a file that is not a script is
            // the classic probe for running an upload; never worth the front controller.
            Lookup::PastAFile if self.root.names_a_script(&clean) => {
                Route::NotFound("a file in the path is not a script")
            }
            Lookup::Missing
                if !self.front_controller_for_missing_scripts
                    && self.root.names_a_script(&clean) =>
            {
                Route::NotFound("no such script")
            }
            Lookup::PastAFile | Lookup::Missing => match self.front_controller(mount)? {
                Some(front) => Route::Script(front),
                None => Route::NotFound("no file or script for this path"),
            },
        })
    }

    fn serve_file(
        &self,
        parts: &Parts,
        file: PathBuf,
    ) -> impl Future<Output = Response<FcgiBody>> + Send {
        self.serve_static(parts, file)
    }

    fn finish_script(
        &self,
        parts: &Parts,
        res: Response<FcgiBody>,
    ) -> impl Future<Output = Result<Response<FcgiBody>, Error>> + Send {
        self.rewrite(parts, res)
    }
}

impl SiteInner {
    /// Dotfiles (except `/.well-known/`) and configured prefixes, after normalisation.
    fn denied(&self, path: &CleanPath<'_>) -> Option<&'static str> {
        if !self.allow_dotfiles
            && path
                .segments()
                .any(|s| s.starts_with(b".") && s != b".well-known")
        {
            return Some("dotfile");
        }
        let bytes = path.bytes();
        let denied = self.deny.iter().any(|prefix| {
            bytes
                .strip_prefix(prefix.as_bytes())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
        });
        denied.then_some("denied path")
    }

    /// The front controller, if configured and present, without path info.
    fn front_controller<'a>(&'a self, mount: Mount<'a>) -> Result<Option<Script<'a>>, Error> {
        let Some(front) = self.front_controller.as_deref() else {
            return Ok(None);
        };
        let Ok(clean) = CleanPath::parse(front) else {
            return Ok(None);
        };
        match self.root.lookup(&clean) {
            Lookup::Script {
                script, filename, ..
            } => script_under_root(&self.root, mount, script, Vec::new(), filename).map(Some),
            _ => Ok(None),
        }
    }
}
