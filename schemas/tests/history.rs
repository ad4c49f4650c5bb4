//! Schema evolution in git history: every committed revision of a catalogue file (and
//! the working copy, if changed) must be compatible with the revision before it. A change
//! that breaks subscribers belongs in a new major version file (`….v<N+1>.json`).

use std::path::{Path, PathBuf};
use std::process::Command;

use civicbus_schemas::Catalogue;
use civicbus_schemas::compat::{check, is_breaking};
use civicbus_schemas::registry::builtin_dir;
use serde_json::Value;

fn git(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn catalogue_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !["examples", "src", "tests", "target"].contains(&name) && !name.starts_with('.') {
                catalogue_files(&path, out);
            }
        } else if name.ends_with(".json") {
            out.push(path);
        }
    }
}

#[test]
fn no_committed_revision_of_a_schema_breaks_the_one_before() {
    let dir = builtin_dir();
    let root = git(&dir, &["rev-parse", "--show-toplevel"])
        .map(|s| PathBuf::from(s.trim()))
        .expect("this test reads the catalogue's git history: run it in a git checkout");
    let catalogue = Catalogue::load(std::slice::from_ref(&dir)).expect("catalogue");
    let resolve = |uri: &str| catalogue.document(uri).cloned();
    let mut files = Vec::new();
    catalogue_files(&dir, &mut files);
    assert!(files.len() > 30, "catalogue files found: {}", files.len());
    let mut problems = Vec::new();
    let mut compared = 0;
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .expect("catalogue inside the repository")
            .to_string_lossy()
            .into_owned();
        let revs: Vec<String> = git(&root, &["log", "--format=%H", "--", &rel])
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        // Oldest first, then the working copy.
        let mut versions: Vec<(String, Value)> = revs
            .iter()
            .rev()
            .filter_map(|rev| {
                let text = git(&root, &["show", &format!("{rev}:{rel}")])?;
                Some((rev[..10].to_string(), serde_json::from_str(&text).ok()?))
            })
            .collect();
        if let Some(text) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            versions.push(("working copy".into(), text));
        }
        for pair in versions.windows(2) {
            let ((old_rev, old), (new_rev, new)) = (&pair[0], &pair[1]);
            if old == new {
                continue;
            }
            compared += 1;
            let changes = check(old, new, &resolve);
            if is_breaking(&changes) {
                let lines: Vec<String> = changes
                    .iter()
                    .filter(|c| c.breaking)
                    .map(ToString::to_string)
                    .collect();
                problems.push(format!(
                    "{rel}: {new_rev} breaks {old_rev}:\n  {}",
                    lines.join("\n  ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "breaking changes to published schemas (add a new major version instead):\n{}",
        problems.join("\n")
    );
    eprintln!("{compared} schema revision pair(s) compared");
}
