//! `BundlePath`: a sanitized, relative, forward-slash path inside a bundle.
//!
//! Every path that comes from a zip entry, a manifest or an import goes through
//! [`BundlePath::parse`] before it is used. Rejections are specific so that an author (or a
//! security reviewer) can see exactly why an entry was refused.

use std::fmt;

/// Longest accepted path, in bytes. iOS and Android file systems cope with far more, but no
/// sane slide needs it, and it bounds what a hostile archive can make us allocate per name.
pub const MAX_PATH_BYTES: usize = 1024;
/// Deepest accepted nesting.
pub const MAX_PATH_DEPTH: usize = 32;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is not valid UTF-8")]
    NotUtf8,
    #[error("path is absolute")]
    Absolute,
    #[error("path has a drive or scheme prefix ({0:?})")]
    DrivePrefix(String),
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains a control or NUL character")]
    ControlCharacter,
    #[error("path escapes the bundle with '..'")]
    Traversal,
    #[error("path contains an empty or '.' segment")]
    EmptySegment,
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("path is nested deeper than {MAX_PATH_DEPTH} folders")]
    TooDeep,
    #[error("path segment ends with a dot or space, which Windows and some zip tools rewrite")]
    TrailingDotOrSpace,
}

/// A validated path inside a bundle: relative, `/`-separated, no `.`/`..`/empty segments,
/// no control characters, no backslashes, no drive prefixes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct BundlePath(String);

impl BundlePath {
    /// Validates raw bytes as they appear in a zip entry name.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, PathError> {
        let s = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
        Self::parse(s)
    }

    /// Validates a path string.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(PathError::ControlCharacter);
        }
        if s.contains('\\') {
            return Err(PathError::Backslash);
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute);
        }
        // `C:foo`, `C:/foo`, `file:...`, `http://`: a colon in the first segment is a drive or a
        // scheme on some platform. Colons are never needed in slide file names.
        let first = s.split('/').next().unwrap_or_default();
        if first.contains(':') {
            return Err(PathError::DrivePrefix(first.to_string()));
        }
        let mut depth = 0;
        for seg in s.split('/') {
            match seg {
                ".." => return Err(PathError::Traversal),
                "" | "." => return Err(PathError::EmptySegment),
                _ => {}
            }
            if seg.ends_with('.') || seg.ends_with(' ') {
                return Err(PathError::TrailingDotOrSpace);
            }
            depth += 1;
        }
        if depth > MAX_PATH_DEPTH {
            return Err(PathError::TooDeep);
        }
        Ok(BundlePath(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder-free last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Lower-cased extension without the dot, if any.
    pub fn extension(&self) -> Option<String> {
        let name = self.file_name();
        let dot = name.rfind('.')?;
        (dot > 0).then(|| name[dot + 1..].to_ascii_lowercase())
    }

    /// Key under which two paths collide on a case-insensitive file system (APFS default,
    /// FAT on SD cards).
    pub fn case_fold_key(&self) -> String {
        self.0.to_lowercase()
    }

    /// Resolves `reference` (as written in HTML, e.g. `../shared/app.css`) against the folder of
    /// this path. Returns `None` when it would leave the bundle or is not a plain relative path.
    pub fn join_relative(&self, reference: &str) -> Option<BundlePath> {
        let mut parts: Vec<&str> = self.0.split('/').collect();
        parts.pop();
        for seg in reference.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                s => parts.push(s),
            }
        }
        BundlePath::parse(&parts.join("/")).ok()
    }
}

impl fmt::Display for BundlePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for BundlePath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for BundlePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BundlePath::parse(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}

impl AsRef<str> for BundlePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in ["index.html", "slides/01-intro/index.html", "shared/fonts/Inter.woff2", "a b/c-d_e.f.png"] {
            assert_eq!(BundlePath::parse(p).map(|b| b.to_string()), Ok(p.to_string()), "{p}");
        }
    }

    #[test]
    fn rejects_each_hostile_form() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("../etc/passwd", PathError::Traversal),
            ("slides/../../x", PathError::Traversal),
            ("/etc/passwd", PathError::Absolute),
            ("C:/Windows/x", PathError::DrivePrefix("C:".into())),
            ("C:x", PathError::DrivePrefix("C:x".into())),
            ("file:x", PathError::DrivePrefix("file:x".into())),
            ("slides\\x.html", PathError::Backslash),
            ("..\\x", PathError::Backslash),
            ("a\0b", PathError::ControlCharacter),
            ("a\nb", PathError::ControlCharacter),
            ("a\u{7f}b", PathError::ControlCharacter),
            ("a//b", PathError::EmptySegment),
            ("./a", PathError::EmptySegment),
            ("dir/", PathError::EmptySegment),
            ("a./b", PathError::TrailingDotOrSpace),
            ("a /b", PathError::TrailingDotOrSpace),
        ];
        for (p, want) in cases {
            assert_eq!(BundlePath::parse(p).as_ref(), Err(want), "{p:?}");
        }
        assert_eq!(BundlePath::parse(&"a".repeat(MAX_PATH_BYTES + 1)), Err(PathError::TooLong));
        assert_eq!(BundlePath::parse(&vec!["a"; MAX_PATH_DEPTH + 1].join("/")), Err(PathError::TooDeep));
        assert_eq!(BundlePath::from_bytes(b"a\xffb"), Err(PathError::NotUtf8));
    }

    #[test]
    fn joins_html_references() {
        let slide = BundlePath::parse("km1/km1.html").unwrap();
        assert_eq!(slide.join_relative("../shared/app.css").unwrap().as_str(), "shared/app.css");
        assert_eq!(slide.join_relative("img/a.png").unwrap().as_str(), "km1/img/a.png");
        assert_eq!(slide.join_relative("../../escape"), None);
    }

    proptest! {
        /// Whatever string is thrown at it, an accepted path is relative, free of traversal and
        /// control characters, and round-trips unchanged.
        #[test]
        fn accepted_paths_are_always_safe(s in "\\PC{0,40}|[a./\\\\:\\x00 ]{0,12}") {
            if let Ok(p) = BundlePath::parse(&s) {
                prop_assert_eq!(p.as_str(), s.as_str());
                prop_assert!(!s.starts_with('/'));
                prop_assert!(!s.contains('\\'));
                prop_assert!(s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
                prop_assert!(!s.chars().any(char::is_control));
                // Joining it under a root never escapes the root.
                let root = std::path::Path::new("/root/bundle");
                let joined = root.join(p.as_str());
                prop_assert!(joined.starts_with(root));
                prop_assert!(joined.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
            }
        }

        #[test]
        fn generated_safe_paths_are_accepted(segs in proptest::collection::vec("[a-zA-Z0-9_-]{1,12}(\\.[a-z0-9]{1,4})?", 1..6)) {
            let s = segs.join("/");
            prop_assert_eq!(BundlePath::parse(&s).map(|p| p.to_string()), Ok(s));
        }
    }
}
