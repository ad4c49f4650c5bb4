//! The schema registry: the catalogue directories loaded, every `$ref` resolved from
//! those files only (never over the network), every validator compiled once, and lookups
//! by `dataschema` URI or by event type.
//!
//! A [`Catalogue`] is immutable; [`SchemaRegistry`] holds the current one behind an
//! `Arc` and swaps it on [`SchemaRegistry::reload`], so validations in flight finish on
//! the catalogue they started with and a catalogue that fails to load never replaces a
//! good one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

use civicbus_core::ports::SchemaViolation;

/// The JSON Schema dialect every catalogue file must declare.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Directory names skipped when loading (test instances, not schemas).
const EXAMPLES_DIR: &str = "examples";

/// A problem with one catalogue file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct LoadError {
    /// The file (or directory) at fault.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found while loading a catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the schema catalogue has {} error(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct LoadErrors(pub Vec<LoadError>);

/// One event schema: an event type at one major version.
pub struct EventSchema {
    /// The CloudEvents type, e.g. `ca.haliburton.permitting.permit.issued`.
    pub ty: String,
    /// Major version (from the `$id`'s `v<N>`).
    pub version: u32,
    /// The `$id` (what producers put in `dataschema`).
    pub id: String,
    /// The `title`.
    pub title: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The schema document.
    pub schema: Value,
    validator: Validator,
}

impl std::fmt::Debug for EventSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSchema")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EventSchema {
    /// Every way `data` fails this schema (empty: valid).
    pub fn violations(&self, data: &Value) -> Vec<SchemaViolation> {
        self.validator
            .iter_errors(data)
            .map(|e| SchemaViolation {
                pointer: e.instance_path().as_str().to_string(),
                keyword: e.kind().keyword().to_string(),
                schema_path: e.schema_path().as_str().to_string(),
                message: e.to_string(),
            })
            .collect()
    }

    /// Whether `data` is valid.
    pub fn is_valid(&self, data: &Value) -> bool {
        self.validator.is_valid(data)
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The schema to validate against.
    Found(Arc<EventSchema>),
    /// The `dataschema` URI is not in the catalogue.
    UnknownSchema {
        /// The URI given.
        uri: String,
        /// The `$id`s the catalogue holds for the event's type.
        known: Vec<String>,
    },
    /// The `dataschema` names a schema of another event type.
    OtherType {
        /// The schema found.
        schema: Arc<EventSchema>,
    },
    /// No schema for the type.
    UnknownType {
        /// Known types closest to it, best first (at most 3).
        closest: Vec<String>,
    },
}

/// A loaded, compiled catalogue.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// By type, then major version.
    by_type: BTreeMap<String, BTreeMap<u32, Arc<EventSchema>>>,
    /// By `$id`.
    by_id: HashMap<String, Arc<EventSchema>>,
    /// Shared (non-event) documents by `$id`.
    shared: BTreeMap<String, PathBuf>,
    /// Every document (event and shared) by `$id`.
    documents: HashMap<String, Value>,
}

impl Catalogue {
    /// Load every `*.json` file below `dirs` (except in `examples/` directories),
    /// resolve `$ref`s among them and compile every event schema. Reports every problem
    /// found, each naming its file.
    pub fn load(dirs: &[PathBuf]) -> Result<Catalogue, LoadErrors> {
        Catalogue::load_with(false, dirs)
    }

    /// The catalogue shipped inside civicbus (the schema files of this crate, embedded at
    /// build time), plus every `*.json` file below `dirs`.
    pub fn load_with(builtin: bool, dirs: &[PathBuf]) -> Result<Catalogue, LoadErrors> {
        let mut errors = Vec::new();
        let mut sources: Vec<(PathBuf, String)> = Vec::new();
        if builtin {
            embedded_sources(&BUILTIN, &mut sources);
        }
        let mut files = Vec::new();
        for dir in dirs {
            collect_files(dir, &mut files, &mut errors);
        }
        files.sort();
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((path, text)),
                Err(e) => errors.push(LoadError {
                    path,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        Catalogue::from_sources(sources, errors)
    }

    /// Compile documents given as (name, JSON text), adding to `errors`.
    fn from_sources(
        sources: Vec<(PathBuf, String)>,
        mut errors: Vec<LoadError>,
    ) -> Result<Catalogue, LoadErrors> {
        let dirs = [PathBuf::from("catalogue")];
        // Read and check every document.
        let mut docs: Vec<(PathBuf, String, Value)> = Vec::new();
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        for (path, text) in sources {
            match read_document(&path, &text) {
                Ok((id, doc)) => {
                    if let Some(first) = seen.get(&id) {
                        errors.push(LoadError {
                            path: path.clone(),
                            message: format!(
                                "`$id` {id} is already used by {}; each schema needs its own `$id`",
                                first.display()
                            ),
                        });
                        continue;
                    }
                    seen.insert(id.clone(), path.clone());
                    docs.push((path, id, doc));
                }
                Err(e) => errors.push(e),
            }
        }
        // Every `$ref` must point into the catalogue: name the file that points outside,
        // and leave it out, rather than fail the whole catalogue on one file.
        let known: std::collections::HashSet<String> =
            docs.iter().map(|(_, id, _)| id.clone()).collect();
        docs.retain(|(path, id, doc)| {
            let mut missing = Vec::new();
            external_refs(id, doc, &mut |target| {
                if !known.contains(target) && !missing.iter().any(|m| m == target) {
                    missing.push(target.to_string());
                }
            });
            if missing.is_empty() {
                return true;
            }
            errors.push(LoadError {
                path: path.clone(),
                message: format!(
                    "refers to {} which is not in the schema catalogue (civicbus never fetches schemas over the network; add the file to a catalogue directory or fix the `$ref`)",
                    missing.join(", ")
                ),
            });
            false
        });
        let resources: Vec<(String, Value)> = docs
            .iter()
            .map(|(_, id, doc)| (id.clone(), doc.clone()))
            .collect();
        let registry = match jsonschema::Registry::new()
            .retriever(NoNetwork)
            .extend(resources)
            .and_then(|b| b.prepare())
        {
            Ok(r) => r,
            Err(e) => {
                errors.push(LoadError {
                    path: dirs.first().cloned().unwrap_or_default(),
                    message: format!("the schemas cannot be put together: {e}"),
                });
                return Err(LoadErrors(errors));
            }
        };
        let mut catalogue = Catalogue::default();
        for (path, id, doc) in docs {
            catalogue.documents.insert(id.clone(), doc.clone());
            let Some((ty, version)) = event_type_of(&id) else {
                catalogue.shared.insert(id, path);
                continue;
            };
            let built = jsonschema::options()
                .with_registry(&registry)
                .with_retriever(NoNetwork)
                .build(&doc);
            let validator = match built {
                Ok(v) => v,
                Err(e) => {
                    errors.push(LoadError {
                        path,
                        message: format!("cannot be compiled: {e}"),
                    });
                    continue;
                }
            };
            let title = doc
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let schema = Arc::new(EventSchema {
                ty: ty.clone(),
                version,
                id: id.clone(),
                title,
                path,
                schema: doc,
                validator,
            });
            catalogue.by_id.insert(id, schema.clone());
            catalogue
                .by_type
                .entry(ty)
                .or_default()
                .insert(version, schema);
        }
        if errors.is_empty() {
            Ok(catalogue)
        } else {
            Err(LoadErrors(errors))
        }
    }

    /// The schema for an event of type `ty`: the one its `dataschema` names, else the
    /// highest major version of the type.
    pub fn lookup(&self, ty: &str, dataschema: Option<&str>) -> Lookup {
        if let Some(uri) = dataschema {
            return match self.by_id.get(uri) {
                Some(s) if s.ty == ty => Lookup::Found(s.clone()),
                Some(s) => Lookup::OtherType { schema: s.clone() },
                None => Lookup::UnknownSchema {
                    uri: uri.to_string(),
                    known: self
                        .by_type
                        .get(ty)
                        .map(|v| v.values().map(|s| s.id.clone()).collect())
                        .unwrap_or_default(),
                },
            };
        }
        match self.by_type.get(ty).and_then(|v| v.values().next_back()) {
            Some(s) => Lookup::Found(s.clone()),
            None => Lookup::UnknownType {
                closest: self.closest(ty),
            },
        }
    }

    /// Known types closest to `ty` (edit distance), best first, at most 3.
    pub fn closest(&self, ty: &str) -> Vec<String> {
        let mut scored: Vec<(usize, &String)> = self
            .by_type
            .keys()
            .map(|k| (strsim::levenshtein(ty, k), k))
            .filter(|(d, k)| *d <= k.len().max(ty.len()) / 2)
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, k)| k.clone()).collect()
    }

    /// Every event schema, by type then version.
    pub fn schemas(&self) -> impl Iterator<Item = &Arc<EventSchema>> {
        self.by_type.values().flat_map(|v| v.values())
    }

    /// A schema by `$id`.
    pub fn by_id(&self, id: &str) -> Option<&Arc<EventSchema>> {
        self.by_id.get(id)
    }

    /// Number of event schemas.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Any document of the catalogue (event schema or shared) by `$id` (without
    /// fragment): what [`crate::compat::check`] resolves references with.
    pub fn document(&self, id: &str) -> Option<&Value> {
        self.documents.get(id)
    }

    /// The shared documents (`$id` → file), such as `common/types.v1.json`.
    pub fn shared(&self) -> &BTreeMap<String, PathBuf> {
        &self.shared
    }
}

/// The event type and major version an `$id` names: `…/<type>/v<N>` where `<type>`
/// contains a dot and is not under `/common/`.
pub fn event_type_of(id: &str) -> Option<(String, u32)> {
    let path = id.split(['#', '?']).next()?;
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let version = segments.next()?.strip_prefix('v')?.parse().ok()?;
    let ty = segments.next()?;
    if !ty.contains('.') || segments.next() == Some("common") {
        return None;
    }
    Some((ty.to_string(), version))
}

/// Call `found` with the document URI (without fragment) of every `$ref` in `doc` that
/// points at another document, resolved against the document's `$id`.
fn external_refs(id: &str, doc: &Value, found: &mut dyn FnMut(&str)) {
    match doc {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let target = r.split('#').next().unwrap_or_default();
                if !target.is_empty() {
                    let absolute = if target.contains("://") {
                        target.to_string()
                    } else {
                        // Relative to the document's `$id`: replace its last segment.
                        let base = id.rsplit_once('/').map_or(id, |(b, _)| b);
                        format!("{base}/{}", target.trim_start_matches("./"))
                    };
                    if absolute != id {
                        found(&absolute);
                    }
                }
            }
            for (k, v) in map {
                if k != "examples" && k != "enum" && k != "const" && k != "default" {
                    external_refs(id, v, found);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                external_refs(id, v, found);
            }
        }
        _ => {}
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(LoadError {
                path: dir.to_path_buf(),
                message: format!("cannot read the schema directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name != EXAMPLES_DIR && !name.starts_with('.') && name != "src" && name != "target" {
                collect_files(&path, out, errors);
            }
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// The shipped catalogue, embedded at build time.
static BUILTIN: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR");

/// The schema documents of an embedded directory tree (as [`collect_files`] picks them).
fn embedded_sources(dir: &include_dir::Dir<'static>, out: &mut Vec<(PathBuf, String)>) {
    for file in dir.files() {
        let path = file.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Some(text) = file.contents_utf8()
        {
            out.push((Path::new("builtin").join(path), text.to_string()));
        }
    }
    for sub in dir.dirs() {
        let name = sub
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name != EXAMPLES_DIR
            && !name.starts_with('.')
            && name != "src"
            && name != "target"
            && name != "tests"
        {
            embedded_sources(sub, out);
        }
    }
}

/// Check one document: JSON, 2020-12, with an `$id`, valid against the metaschema.
fn read_document(path: &Path, text: &str) -> Result<(String, Value), LoadError> {
    let err = |message: String| LoadError {
        path: path.to_path_buf(),
        message,
    };
    let doc: Value =
        serde_json::from_str(text).map_err(|e| err(format!("is not valid JSON: {e}")))?;
    let dialect = doc.get("$schema").and_then(Value::as_str);
    if dialect != Some(DIALECT) {
        return Err(err(format!(
            "`$schema` must be \"{DIALECT}\" (found {})",
            dialect.map_or("none".to_string(), |d| format!("\"{d}\""))
        )));
    }
    let id = doc
        .get("$id")
        .and_then(Value::as_str)
        .filter(|id| id.contains("://"))
        .ok_or_else(|| {
            err(
                "has no absolute `$id`; use https://civicbus.haliburton.ca/schemas/<type>/v<major>"
                    .into(),
            )
        })?
        .to_string();
    if let Err(e) = jsonschema::meta::validate(&doc) {
        return Err(err(format!(
            "is not a valid JSON Schema at {}: {e}",
            e.instance_path()
        )));
    }
    Ok((id, doc))
}

/// Refuses every retrieval: the catalogue is self-contained.
struct NoNetwork;

impl Retrieve for NoNetwork {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!(
            "{uri} is not in the schema catalogue (civicbus never fetches schemas over the network; add the file to a catalogue directory)"
        )
        .into())
    }
}

/// The current catalogue, replaceable while in use.
#[derive(Debug)]
pub struct SchemaRegistry {
    builtin: bool,
    dirs: Vec<PathBuf>,
    current: RwLock<Arc<Catalogue>>,
}

impl SchemaRegistry {
    /// Load the catalogue from `dirs`.
    pub fn load(dirs: Vec<PathBuf>) -> Result<SchemaRegistry, LoadErrors> {
        SchemaRegistry::load_with(false, dirs)
    }

    /// Load the shipped catalogue (if `builtin`) and `dirs`.
    pub fn load_with(builtin: bool, dirs: Vec<PathBuf>) -> Result<SchemaRegistry, LoadErrors> {
        let catalogue = Catalogue::load_with(builtin, &dirs)?;
        Ok(SchemaRegistry {
            builtin,
            dirs,
            current: RwLock::new(Arc::new(catalogue)),
        })
    }

    /// The directories loaded.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The catalogue now in force.
    pub fn current(&self) -> Arc<Catalogue> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A value that changes when a catalogue file below the directories is added,
    /// removed or modified (paths, sizes and modification times), for watching them.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut files = Vec::new();
        let mut ignored = Vec::new();
        for dir in &self.dirs {
            collect_files(dir, &mut files, &mut ignored);
        }
        files.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in &files {
            f.hash(&mut h);
            if let Ok(meta) = std::fs::metadata(f) {
                meta.len().hash(&mut h);
                if let Ok(t) = meta.modified() {
                    t.hash(&mut h);
                }
            }
        }
        ignored.len().hash(&mut h);
        h.finish()
    }

    /// Load the directories again; on success the new catalogue replaces the old one
    /// (validations in flight finish on the old one). On failure nothing changes.
    pub fn reload(&self) -> Result<usize, LoadErrors> {
        let catalogue = Catalogue::load_with(self.builtin, &self.dirs)?;
        let n = catalogue.len();
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(catalogue);
        Ok(n)
    }
}

/// The catalogue shipped with civicbus: the directory of this crate.
pub fn builtin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_types_and_versions() {
        assert_eq!(
            event_type_of(
                "https://civicbus.haliburton.ca/schemas/ca.haliburton.permitting.permit.issued/v1"
            ),
            Some(("ca.haliburton.permitting.permit.issued".into(), 1))
        );
        assert_eq!(
            event_type_of("https://example.org/x/org.example.thing.happened/v12/"),
            Some(("org.example.thing.happened".into(), 12))
        );
        assert_eq!(
            event_type_of("https://civicbus.haliburton.ca/schemas/common/types/v1"),
            None
        );
        assert_eq!(event_type_of("https://example.org/schemas/thing/v1"), None);
        assert_eq!(
            event_type_of("https://example.org/schemas/a.b/latest"),
            None
        );
    }
}
