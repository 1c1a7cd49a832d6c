//! Request paths: percent-decoding, normalisation and script resolution under a document root.
//!
//! Everything that ends up in SCRIPT_FILENAME passes through here. The rules are
//! deliberately strict because a FastCGI backend executes whatever file it is named:
//! - decoded NUL, control characters (CR/LF: CVE-2019-11043) and backslashes are refused;
//! - an encoded slash (`%2F`) is refused rather than decoded into a separator;
//! - `.` segments and empty segments are dropped, `..` pops a segment and is refused when
//!   it would climb above the root;
//! - split path info (`/index.php/extra`) only applies when the script part is an existing
//!   regular file with an allowed extension, compared byte for byte (no Unicode folding),
//!   so `/uploads/x.jpg/a.php` never runs `x.jpg`;
//! - symlinks that resolve outside the root are refused unless explicitly allowed.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// NUL, a control character or a backslash after decoding.
    ForbiddenByte,
    /// `%2F` inside a segment.
    EncodedSlash,
    /// `..` above the root.
    AboveRoot,
    /// A `%` not followed by two hex digits (`/x.php/%ZZ`): the path means nothing
    /// definite, and decoding it leniently would let two spellings name one file.
    InvalidEscape,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathError::ForbiddenByte => "control character, NUL or backslash in path",
            PathError::EncodedSlash => "encoded slash in path",
            PathError::AboveRoot => "path climbs above the root",
            PathError::InvalidEscape => "invalid percent-encoding in path",
        })
    }
}

/// A decoded, normalised absolute path: starts with `/`, no empty, `.` or `..` segments,
/// and keeps one trailing slash if the request had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CleanPath<'a> {
    path: Cow<'a, [u8]>,
}

impl<'a> CleanPath<'a> {
    /// Decodes and normalises a raw URI path (`/a/b%20c/../d`).
    pub(crate) fn parse(raw: &'a str) -> Result<CleanPath<'a>, PathError> {
        if is_already_clean(raw.as_bytes()) {
            return Ok(CleanPath {
                path: Cow::Borrowed(raw.as_bytes()),
            });
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 1);
        let mut segment_starts: Vec<usize> = Vec::new();
        for segment in raw.split('/') {
            if segment.is_empty() {
                continue;
            }
            if !escapes_are_valid(segment.as_bytes()) {
                return Err(PathError::InvalidEscape);
            }
            let decoded: Cow<'_, [u8]> = percent_decode(segment.as_bytes()).into();
            if decoded.contains(&b'/') {
                return Err(PathError::EncodedSlash);
            }
            if decoded.iter().any(|&b| is_forbidden(b)) {
                return Err(PathError::ForbiddenByte);
            }
            match &decoded[..] {
                b"." => {}
                b".." => {
                    let start = segment_starts.pop().ok_or(PathError::AboveRoot)?;
                    out.truncate(start);
                }
                _ => {
                    segment_starts.push(out.len());
                    out.push(b'/');
                    out.extend_from_slice(&decoded);
                }
            }
        }
        if out.is_empty() || trailing_dot_or_slash(raw) {
            out.push(b'/');
        }
        Ok(CleanPath {
            path: Cow::Owned(out),
        })
    }

    /// The normalised path bytes.
    #[cfg_attr(not(feature = "php"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.path
    }

    /// Whether the path ends with `/` (the root `/` included).
    pub(crate) fn has_trailing_slash(&self) -> bool {
        self.path.ends_with(b"/")
    }

    /// The non-empty segments.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.path.split(|&b| b == b'/').filter(|s| !s.is_empty())
    }

    /// The normalised path bytes, owned or borrowed from the request.
    pub(crate) fn into_bytes(self) -> Cow<'a, [u8]> {
        self.path
    }
}

/// True when the last segment of `raw` was a dot segment or the path ended with a slash;
/// both keep a trailing slash after normalisation (`/a/b/..` is `/a/`).
fn trailing_dot_or_slash(raw: &str) -> bool {
    let last = raw.rsplit('/').next().unwrap_or("");
    if last.is_empty() {
        return true;
    }
    let decoded: Cow<'_, [u8]> = percent_decode(last.as_bytes()).into();
    decoded.as_ref() == b"." || decoded.as_ref() == b".."
}

/// Whether every `%` starts a two-hex-digit escape (`percent_decode` would pass a bad
/// one through literally).
fn escapes_are_valid(raw: &[u8]) -> bool {
    let mut rest = raw;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        match rest.get(at + 1..at + 3) {
            Some([hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                rest = rest.get(at + 3..).unwrap_or_default();
            }
            _ => return false,
        }
    }
    true
}

fn is_forbidden(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'\\'
}

/// Fast path: a path with no escapes, no empty/dot segments and no forbidden bytes is
/// already clean and needs no copy.
fn is_already_clean(raw: &[u8]) -> bool {
    if raw.first() != Some(&b'/') {
        return false;
    }
    if raw.iter().any(|&b| b == b'%' || is_forbidden(b)) {
        return false;
    }
    // Any empty segment other than a single trailing one, or any "." / ".." segment.
    let inner = raw.strip_suffix(b"/").unwrap_or(raw);
    inner
        .split(|&b| b == b'/')
        .skip(1)
        .all(|s| !s.is_empty() && s != b"." && s != b"..")
        || raw == b"/"
}

/// How scripts are recognised under a document root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScriptMatch {
    /// Files whose name ends with `.` + one of these extensions (exact bytes).
    Extensions(Vec<String>),
    /// Every regular file is a script (CGI directories served by fcgiwrap).
    AnyFile,
}

impl ScriptMatch {
    pub(crate) fn matches(&self, file_name: &[u8]) -> bool {
        match self {
            ScriptMatch::AnyFile => true,
            ScriptMatch::Extensions(exts) => exts.iter().any(|ext| {
                file_name
                    .strip_suffix(ext.as_bytes())
                    .and_then(|rest| rest.strip_suffix(b"."))
                    .is_some_and(|stem| !stem.is_empty())
            }),
        }
    }
}

/// Document-root configuration.
#[derive(Debug, Clone)]
pub(crate) struct DocumentRoot {
    /// The root as configured (used in SCRIPT_FILENAME and DOCUMENT_ROOT).
    pub(crate) root: PathBuf,
    /// The root with symlinks resolved, for containment checks.
    pub(crate) canonical_root: PathBuf,
    pub(crate) index: Vec<String>,
    pub(crate) scripts: ScriptMatch,
    pub(crate) follow_symlinks_outside: bool,
}

/// What a request path finds under a document root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Run this script.
    Script {
        /// URI path of the script below the mount (`/blog/index.php`), decoded.
        script: Vec<u8>,
        /// The rest of the path (`/extra`), decoded; empty if none.
        path_info: Vec<u8>,
        /// The file to run.
        filename: PathBuf,
    },
    /// A directory requested without its trailing slash.
    DirectoryWithoutSlash,
    /// An existing regular file that is not a script.
    File(PathBuf),
    /// The path continues past a regular file that is not a script (`/x.jpg/a.php`,
    /// `/x.jpg/`): never split path info, never a file to serve.
    PastAFile,
    /// Nothing here: a missing segment, a directory without an index file, something
    /// that is not a regular file, or a file that resolves outside the root.
    Missing,
}

impl DocumentRoot {
    pub(crate) fn new(root: PathBuf) -> DocumentRoot {
        let canonical_root = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        DocumentRoot {
            root,
            canonical_root,
            index: owned(crate::defaults::INDEX_FILES),
            scripts: ScriptMatch::Extensions(owned(crate::defaults::SCRIPT_EXTENSIONS)),
            follow_symlinks_outside: crate::defaults::FOLLOW_SYMLINKS_OUTSIDE_ROOT,
        }
    }

    /// Walks the path segment by segment from the root until it meets a regular file.
    ///
    /// This stats files on the calling thread, as nginx's `try_files` does: on a local
    /// filesystem with a warm dentry cache each stat takes about a microsecond.
    pub(crate) fn lookup(&self, path: &CleanPath<'_>) -> Lookup {
        let segments: Vec<&[u8]> = path.segments().collect();
        let mut fs_path = self.root.clone();
        for (i, segment) in segments.iter().enumerate() {
            fs_path.push(OsStr::from_bytes(segment));
            let Ok(meta) = std::fs::metadata(&fs_path) else {
                return Lookup::Missing;
            };
            if meta.is_dir() {
                continue;
            }
            if !meta.is_file() {
                return Lookup::Missing;
            }
            let rest = segments.get(i + 1..).unwrap_or_default();
            let is_script = self.scripts.matches(segment);
            if !self.is_inside_root(&fs_path) {
                tracing::warn!(path = %fs_path.display(), "refusing a file that resolves outside the document root");
                return Lookup::Missing;
            }
            if !is_script {
                // Path info only splits off scripts: `/uploads/x.jpg/a.php` is not found.
                return if rest.is_empty() && !path.has_trailing_slash() {
                    Lookup::File(fs_path)
                } else {
                    Lookup::PastAFile
                };
            }
            let mut path_info = Vec::new();
            for s in rest {
                path_info.push(b'/');
                path_info.extend_from_slice(s);
            }
            if path.has_trailing_slash() {
                path_info.push(b'/');
            }
            return Lookup::Script {
                script: join_segments(segments.get(..=i).unwrap_or_default()),
                path_info,
                filename: fs_path,
            };
        }
        // The whole path is a directory.
        if !segments.is_empty() && !path.has_trailing_slash() {
            return Lookup::DirectoryWithoutSlash;
        }
        for index in &self.index {
            let candidate = fs_path.join(index);
            if !std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
                continue;
            }
            // Checked for static index files too: `/dir/` must not serve a
            // `dir/index.html` that is a symlink out of the root when `/dir/index.html`
            // would be refused.
            if !self.is_inside_root(&candidate) {
                tracing::warn!(path = %candidate.display(), "refusing an index file that resolves outside the document root");
                return Lookup::Missing;
            }
            if !self.scripts.matches(index.as_bytes()) {
                return Lookup::File(candidate);
            }
            let mut script = join_segments(&segments);
            script.push(b'/');
            script.extend_from_slice(index.as_bytes());
            return Lookup::Script {
                script,
                path_info: Vec::new(),
                filename: candidate,
            };
        }
        Lookup::Missing
    }

    /// Whether a segment of the path names a script (nginx's `location ~ [^/]\.php(/|$)`),
    /// whether or not it exists.
    #[cfg_attr(not(feature = "php"), allow(dead_code))]
    pub(crate) fn names_a_script(&self, path: &CleanPath<'_>) -> bool {
        path.segments().any(|s| self.scripts.matches(s))
    }

    fn is_inside_root(&self, file: &Path) -> bool {
        if self.follow_symlinks_outside {
            return true;
        }
        std::fs::canonicalize(file).is_ok_and(|real| real.starts_with(&self.canonical_root))
    }
}

fn join_segments(segments: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    out
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
