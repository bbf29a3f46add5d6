//! Broken references in a bundle: `../` paths in its pages and styles that leave the
//! file's folder (a slide reaching shared resources, `../shared/app.css`) and name no file of the
//! bundle. On the device such a slide loads without its styles or scripts, so `bundle check`
//! reports each one as an error. Scanning is textual (references assembled by script at run
//! time are not seen), and only `../` references are judged, the kind that breaks when a shared
//! resource is missing or lands in another folder.

use std::collections::BTreeSet;
use std::io::{Read, Seek};

use serde::Serialize;

use crate::error::Result;
use crate::path::BundlePath;
use crate::reader::BundleArchive;

/// One reference that resolves to no file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenReference {
    /// The page, style or script that holds the reference.
    pub file: String,
    /// As written.
    pub reference: String,
    /// What it resolves to, or `None` when it leaves the bundle.
    pub resolved: Option<String>,
}

impl std::fmt::Display for BrokenReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.resolved {
            Some(p) => write!(f, "{} references {} -> {p}, which is not in the bundle", self.file, self.reference),
            None => write!(f, "{} references {}, which leaves the bundle", self.file, self.reference),
        }
    }
}

/// Pages and styles: where a slide names its files. Scripts are left out: they build paths at
/// run time (`"../" + slide`) and mention paths in comments, which text cannot tell apart.
fn is_scanned(p: &BundlePath) -> bool {
    matches!(p.extension().as_deref(), Some("html" | "htm" | "css"))
}

/// `../x/name.ext`: a file name with an extension (not a folder or a string fragment).
fn names_a_file(r: &str) -> bool {
    r.rsplit('/').next().is_some_and(|name| name.rfind('.').is_some_and(|dot| dot > 0 && dot + 1 < name.len()))
}

/// The broken `../` references of `text`, a file at `file` in a bundle holding `present`.
pub fn broken_in(file: &BundlePath, text: &str, present: &dyn Fn(&str) -> bool) -> Vec<BrokenReference> {
    crate::import::relative_refs(text)
        .into_iter()
        .filter(|r| r.starts_with("../") && names_a_file(r))
        .filter_map(|r| {
            let resolved = file.join_relative(&r);
            match &resolved {
                Some(p) if present(p.as_str()) => None,
                _ => Some(BrokenReference { file: file.to_string(), reference: r, resolved: resolved.map(|p| p.to_string()) }),
            }
        })
        .collect()
}

/// Every broken `../` reference of a bundle's pages and styles (files larger than
/// `max_bytes` are skipped).
pub fn scan_bundle<R: Read + Seek>(archive: &mut BundleArchive<R>, max_bytes: u64) -> Result<Vec<BrokenReference>> {
    let files: BTreeSet<String> = archive.manifest().files.keys().map(|p| p.to_string()).collect();
    let paths: Vec<BundlePath> =
        archive.manifest().files.iter().filter(|(p, f)| is_scanned(p) && f.size <= max_bytes).map(|(p, _)| p.clone()).collect();
    let mut out = Vec::new();
    for p in paths {
        let bytes = archive.read_file_to_vec(&p)?;
        out.extend(broken_in(&p, &String::from_utf8_lossy(&bytes), &|f| files.contains(f)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_parent_references_are_broken() {
        let file = BundlePath::parse("CZ_Home/CZ_Home.html").unwrap();
        let present = |p: &str| p == "shared/css/app.css" || p == "CZ_Home/local.css";
        let html = r#"<link href="../shared/css/app.css"><link href="../shared/css/gone.css?v=2"><script src="local.css"></script>
            <img src="../../../outside/key.pem"> <script>var s = '../shared/js/missing.js'; go("../" + id); // "../../x/"</script> ag.data._savePresenter"#;
        let broken = broken_in(&file, html, &present);
        let refs: Vec<(&str, Option<&str>)> = broken.iter().map(|b| (b.reference.as_str(), b.resolved.as_deref())).collect();
        assert_eq!(
            refs,
            [
                ("../../../outside/key.pem", None),
                ("../shared/css/gone.css", Some("shared/css/gone.css")),
                ("../shared/js/missing.js", Some("shared/js/missing.js"))
            ]
        );
        assert_eq!(
            broken[1].to_string(),
            "CZ_Home/CZ_Home.html references ../shared/css/gone.css -> shared/css/gone.css, which is not in the bundle"
        );
    }
}
