//! The script-mapping settings of the builder and the one decision made from them:
//! application mode or document-root mode, chosen by whether `document_root` was called.
//!
//! Settings that belong to the other mode are refused instead of being switched into it
//! or dropped: a `script_extensions` without a root used to serve `/var/www/html`, and a
//! `script_name` beside a root used to vanish.

use std::path::PathBuf;

use super::builder::BuildError;
use crate::cgi::ScriptMode;
use crate::cgi::path::{DocumentRoot, ScriptMatch};
use crate::defaults;

/// What the script-mapping setters were told, as given (`None`: not called).
#[derive(Debug, Default)]
pub(super) struct ScriptSettings {
    pub(super) document_root: Option<PathBuf>,
    pub(super) extensions: Option<Vec<String>>,
    pub(super) any_file: bool,
    pub(super) index: Option<Vec<String>>,
    pub(super) follow_symlinks_outside: Option<bool>,
    pub(super) script_name: Option<String>,
    pub(super) script_filename: Option<PathBuf>,
    pub(super) app_document_root: Option<PathBuf>,
}

impl ScriptSettings {
    /// The document-root-only setters that were called.
    fn document_root_settings(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.extensions.is_some() {
            set.push("script_extensions");
        }
        if self.any_file {
            set.push("any_file_is_a_script");
        }
        if self.index.is_some() {
            set.push("index_files");
        }
        if self.follow_symlinks_outside.is_some() {
            set.push("follow_symlinks_outside_root");
        }
        set
    }

    /// The application-only setters that were called.
    fn application_settings(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.script_name.is_some() {
            set.push("script_name");
        }
        if self.script_filename.is_some() {
            set.push("script_filename");
        }
        if self.app_document_root.is_some() {
            set.push("application_document_root");
        }
        set
    }

    /// The script mode these settings describe, or why they contradict each other.
    pub(super) fn into_mode(self) -> Result<ScriptMode, BuildError> {
        let doc_only = self.document_root_settings();
        let app_only = self.application_settings();
        let Some(root) = self.document_root else {
            if !doc_only.is_empty() {
                return Err(BuildError::new(format!(
                    "{} only apply in document-root mode: also call .document_root(dir)",
                    doc_only.join(", ")
                )));
            }
            return Ok(ScriptMode::Application {
                script_name: self.script_name,
                script_filename: self.script_filename,
                document_root: self.app_document_root,
            });
        };
        if !app_only.is_empty() {
            return Err(BuildError::new(format!(
                "document_root maps the path to a script file, so {} (application mode) \
                 would be ignored: use one mode",
                app_only.join(", ")
            )));
        }
        let scripts = match (self.any_file, self.extensions) {
            (true, Some(_)) => {
                return Err(BuildError::new(
                    "any_file_is_a_script and script_extensions contradict: use one",
                ));
            }
            (true, None) => ScriptMatch::AnyFile,
            (false, Some(ext)) if ext.is_empty() => {
                return Err(BuildError::new(
                    "script_extensions is empty, so nothing could run: \
                     use any_file_is_a_script for CGI directories",
                ));
            }
            (false, Some(ext)) => ScriptMatch::Extensions(ext),
            (false, None) => ScriptMatch::Extensions(owned(defaults::SCRIPT_EXTENSIONS)),
        };
        // A CGI directory has no natural index file; PHP's is index.php.
        let index = match (self.index, &scripts) {
            (Some(index), _) => index,
            (None, ScriptMatch::AnyFile) => Vec::new(),
            (None, ScriptMatch::Extensions(_)) => owned(defaults::INDEX_FILES),
        };
        let mut doc = DocumentRoot::new(root);
        doc.index = index;
        doc.scripts = scripts;
        doc.follow_symlinks_outside = self
            .follow_symlinks_outside
            .unwrap_or(defaults::FOLLOW_SYMLINKS_OUTSIDE_ROOT);
        Ok(ScriptMode::DocumentRoot(doc))
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(settings: ScriptSettings) -> String {
        match settings.into_mode() {
            Ok(mode) => panic!("expected a BuildError, got {mode:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn document_root_settings_without_a_root_are_an_error() {
        for (settings, name) in [
            (
                ScriptSettings {
                    extensions: Some(vec!["cgi".into()]),
                    ..ScriptSettings::default()
                },
                "script_extensions",
            ),
            (
                ScriptSettings {
                    index: Some(vec!["doku.php".into()]),
                    ..ScriptSettings::default()
                },
                "index_files",
            ),
            (
                ScriptSettings {
                    any_file: true,
                    ..ScriptSettings::default()
                },
                "any_file_is_a_script",
            ),
            (
                ScriptSettings {
                    follow_symlinks_outside: Some(true),
                    ..ScriptSettings::default()
                },
                "follow_symlinks_outside_root",
            ),
        ] {
            let msg = err(settings);
            assert!(
                msg.contains(name) && msg.contains(".document_root(dir)"),
                "{msg}"
            );
        }
    }

    #[test]
    fn application_settings_beside_a_root_are_an_error() {
        for (settings, name) in [
            (
                ScriptSettings {
                    script_name: Some("/app".into()),
                    ..ScriptSettings::default()
                },
                "script_name",
            ),
            (
                ScriptSettings {
                    script_filename: Some("/srv/index.php".into()),
                    ..ScriptSettings::default()
                },
                "script_filename",
            ),
            (
                ScriptSettings {
                    app_document_root: Some("/srv".into()),
                    ..ScriptSettings::default()
                },
                "application_document_root",
            ),
        ] {
            let msg = err(ScriptSettings {
                document_root: Some("/srv".into()),
                ..settings
            });
            assert!(msg.contains(name) && msg.contains("use one mode"), "{msg}");
        }
    }

    #[test]
    fn contradictory_script_matches_are_an_error() {
        let root = || Some(PathBuf::from("/srv"));
        let msg = err(ScriptSettings {
            document_root: root(),
            any_file: true,
            extensions: Some(vec!["cgi".into()]),
            ..ScriptSettings::default()
        });
        assert!(msg.contains("contradict"), "{msg}");
        let msg = err(ScriptSettings {
            document_root: root(),
            extensions: Some(Vec::new()),
            ..ScriptSettings::default()
        });
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn document_root_mode_takes_its_defaults_from_the_defaults_module() {
        let mode = ScriptSettings {
            document_root: Some("/srv".into()),
            ..ScriptSettings::default()
        }
        .into_mode();
        let Ok(ScriptMode::DocumentRoot(doc)) = mode else {
            panic!("expected document-root mode, got {mode:?}");
        };
        assert_eq!(doc.index, owned(defaults::INDEX_FILES));
        assert_eq!(
            doc.scripts,
            ScriptMatch::Extensions(owned(defaults::SCRIPT_EXTENSIONS))
        );
        assert_eq!(
            doc.follow_symlinks_outside,
            defaults::FOLLOW_SYMLINKS_OUTSIDE_ROOT
        );
        let mode = ScriptSettings {
            document_root: Some("/srv".into()),
            any_file: true,
            ..ScriptSettings::default()
        }
        .into_mode();
        let Ok(ScriptMode::DocumentRoot(doc)) = mode else {
            panic!("expected document-root mode, got {mode:?}");
        };
        assert!(doc.index.is_empty(), "a CGI directory has no index file");
    }

    #[test]
    fn application_mode_keeps_its_settings() {
        let mode = ScriptSettings {
            script_name: Some("/app".into()),
            script_filename: Some("/srv/app.py".into()),
            ..ScriptSettings::default()
        }
        .into_mode();
        assert!(
            matches!(
                &mode,
                Ok(ScriptMode::Application { script_name: Some(n), script_filename: Some(_), document_root: None }) if n == "/app"
            ),
            "{mode:?}"
        );
    }
}
