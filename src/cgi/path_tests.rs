//! Unit tests of `path.rs`.
use super::*;

fn clean(raw: &str) -> Result<String, PathError> {
    CleanPath::parse(raw).map(|p| String::from_utf8_lossy(p.bytes()).into_owned())
}

#[test]
fn normalisation() {
    assert_eq!(clean("/").unwrap(), "/");
    assert_eq!(clean("/a/b").unwrap(), "/a/b");
    assert_eq!(clean("/a/b/").unwrap(), "/a/b/");
    assert_eq!(clean("//a///b").unwrap(), "/a/b");
    assert_eq!(clean("/a/./b").unwrap(), "/a/b");
    assert_eq!(clean("/a/../b").unwrap(), "/b");
    assert_eq!(clean("/a/b/..").unwrap(), "/a/");
    assert_eq!(clean("/a/b/.").unwrap(), "/a/b/");
    assert_eq!(clean("/x/../conf/").unwrap(), "/conf/");
    assert_eq!(clean("/%63onf/x").unwrap(), "/conf/x");
    assert_eq!(clean("/a%20b").unwrap(), "/a b");
    assert_eq!(clean("/%2e%2e/").unwrap_err(), PathError::AboveRoot);
    assert_eq!(
        clean("/a/%2E%2E/%2e%2e/etc/passwd").unwrap_err(),
        PathError::AboveRoot
    );
    assert_eq!(clean("/..").unwrap_err(), PathError::AboveRoot);
}

#[test]
fn hostile_bytes_are_refused() {
    assert_eq!(clean("/a%00.php").unwrap_err(), PathError::ForbiddenByte);
    assert_eq!(
        clean("/index.php%0a").unwrap_err(),
        PathError::ForbiddenByte
    );
    assert_eq!(clean("/a%0d%0ab").unwrap_err(), PathError::ForbiddenByte);
    assert_eq!(clean("/a%5c..%5cb").unwrap_err(), PathError::ForbiddenByte);
    assert_eq!(clean("/a\\b").unwrap_err(), PathError::ForbiddenByte);
    assert_eq!(clean("/a%2fb").unwrap_err(), PathError::EncodedSlash);
    assert_eq!(clean("/a%2Fb").unwrap_err(), PathError::EncodedSlash);
    assert_eq!(clean("/a%7fb").unwrap_err(), PathError::ForbiddenByte);
}

#[test]
fn invalid_escapes_are_refused() {
    for raw in ["/x.php/%ZZ", "/a%", "/a%4", "/%g0", "/ok/%2", "/a%%41"] {
        assert_eq!(clean(raw).unwrap_err(), PathError::InvalidEscape, "{raw}");
    }
    assert_eq!(clean("/%41%62/%7e").unwrap(), "/Ab/~");
}

#[test]
fn clean_paths_are_borrowed() {
    for raw in ["/", "/a", "/a/b/", "/index.php/x/y"] {
        let p = CleanPath::parse(raw).unwrap();
        assert!(matches!(p.path, Cow::Borrowed(_)), "{raw}");
        assert_eq!(p.bytes(), raw.as_bytes());
    }
    for raw in ["//a", "/a/./b", "/a/..", "/a%41", "/a/."] {
        let p = CleanPath::parse(raw).unwrap();
        assert!(matches!(p.path, Cow::Owned(_)), "{raw}");
    }
}

#[test]
fn extension_matching_is_exact() {
    let php = ScriptMatch::Extensions(vec!["php".into()]);
    assert!(php.matches(b"index.php"));
    assert!(!php.matches(b".php"), "a bare dotfile is not a script");
    assert!(!php.matches(b"index.PHP"));
    assert!(!php.matches(b"index.phtml"));
    assert!(!php.matches(b"x.jpg"));
    assert!(!php.matches(b"indexphp"));
    // Unicode case folding must not turn this into ".php".
    assert!(!php.matches("x.\u{0130}php".as_bytes()));
    assert!(!php.matches("x.pHp".as_bytes()));
}

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("blog/sub")).unwrap();
        std::fs::create_dir_all(root.join("uploads")).unwrap();
        std::fs::write(root.join("index.php"), "<?php").unwrap();
        std::fs::write(root.join("blog/index.php"), "<?php").unwrap();
        std::fs::write(root.join("info.php"), "<?php").unwrap();
        std::fs::write(root.join("uploads/x.jpg"), "<?php evil").unwrap();
        std::fs::write(root.join("style.css"), "body{}").unwrap();
        Tree { dir }
    }

    fn root(&self) -> DocumentRoot {
        DocumentRoot::new(self.dir.path().to_path_buf())
    }

    fn resolve(&self, raw: &str) -> Lookup {
        self.root().lookup(&CleanPath::parse(raw).unwrap())
    }
}

fn script(r: &Lookup) -> (String, String) {
    match r {
        Lookup::Script {
            script, path_info, ..
        } => (
            String::from_utf8(script.clone()).unwrap(),
            String::from_utf8(path_info.clone()).unwrap(),
        ),
        other => panic!("not a script: {other:?}"),
    }
}

#[test]
fn split_path_info() {
    let t = Tree::new();
    assert_eq!(
        script(&t.resolve("/info.php")),
        ("/info.php".into(), "".into())
    );
    assert_eq!(
        script(&t.resolve("/index.php/foo/bar")),
        ("/index.php".into(), "/foo/bar".into())
    );
    assert_eq!(
        script(&t.resolve("/index.php/foo/")),
        ("/index.php".into(), "/foo/".into())
    );
    assert_eq!(
        script(&t.resolve("/index.php/")),
        ("/index.php".into(), "/".into())
    );
}

#[test]
fn directory_index_and_redirect() {
    let t = Tree::new();
    assert_eq!(script(&t.resolve("/")), ("/index.php".into(), "".into()));
    assert_eq!(
        script(&t.resolve("/blog/")),
        ("/blog/index.php".into(), "".into())
    );
    assert_eq!(t.resolve("/blog"), Lookup::DirectoryWithoutSlash);
    assert_eq!(t.resolve("/blog/sub/"), Lookup::Missing);
}

#[test]
fn uploads_never_run() {
    let t = Tree::new();
    assert_eq!(t.resolve("/uploads/x.jpg/a.php"), Lookup::PastAFile);
    assert_eq!(t.resolve("/uploads/x.jpg/"), Lookup::PastAFile);
    assert!(matches!(t.resolve("/uploads/x.jpg"), Lookup::File(_)));
    assert!(matches!(t.resolve("/style.css"), Lookup::File(_)));
    assert_eq!(t.resolve("/missing.php"), Lookup::Missing);
    assert_eq!(t.resolve("/missing/index.php"), Lookup::Missing);
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let t = Tree::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.php"), "<?php").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.php"),
        t.dir.path().join("link.php"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), t.dir.path().join("linkdir")).unwrap();
    assert_eq!(t.resolve("/link.php"), Lookup::Missing);
    assert_eq!(t.resolve("/linkdir/secret.php"), Lookup::Missing);
    let mut lenient = t.root();
    lenient.follow_symlinks_outside = true;
    assert!(matches!(
        lenient.lookup(&CleanPath::parse("/link.php").unwrap()),
        Lookup::Script { .. }
    ));
    // A symlink inside the root is fine.
    std::os::unix::fs::symlink(
        t.dir.path().join("info.php"),
        t.dir.path().join("alias.php"),
    )
    .unwrap();
    assert!(matches!(t.resolve("/alias.php"), Lookup::Script { .. }));
}

#[test]
fn any_file_mode_for_cgi_directories() {
    let t = Tree::new();
    let mut cgi = t.root();
    cgi.scripts = ScriptMatch::AnyFile;
    cgi.index = vec![];
    assert_eq!(
        script(&cgi.lookup(&CleanPath::parse("/style.css/x").unwrap())),
        ("/style.css".into(), "/x".into())
    );
    assert_eq!(cgi.lookup(&CleanPath::parse("/").unwrap()), Lookup::Missing);
}
