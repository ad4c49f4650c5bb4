//! Compatibility of two versions of an event schema.
//!
//! [`check`] compares the JSON Schema (2020-12) of an event type's `data` as subscribers
//! were built against it (OLD) with a proposed version (NEW) and lists every difference
//! that matters to producers or consumers, as [`Change`]s. A change is *breaking* when
//! an event valid under OLD may be invalid under NEW (producers built for OLD break) or
//! when a consumer written for OLD loses something it may rely on (a property removed,
//! a property no longer required). Loosenings (a wider type, an added enum value, a
//! relaxed bound, a new optional property) are reported too, with `breaking == false`,
//! so that `civicbus schema check OLD NEW` can print them as notes.
//!
//! The rules, per pair of corresponding subschemas:
//!
//! | keyword | breaking | note |
//! | --- | --- | --- |
//! | `properties` | property removed (or renamed) | property added (optional) |
//! | `required` | property added as required, property became required, property no longer required | |
//! | `type` | narrowed (`["string","null"]` → `"string"`, `number` → `integer`, any → `string`) | widened |
//! | `enum` / `const` | value removed, enum or const added, const changed | value added, enum or const removed |
//! | `pattern`, `format`, `contentEncoding`, `contentMediaType` | added or changed | removed |
//! | `minimum`, `exclusiveMinimum`, `minLength`, `minItems`, `minProperties`, `minContains` | raised or added | lowered or removed |
//! | `maximum`, `exclusiveMaximum`, `maxLength`, `maxItems`, `maxProperties`, `maxContains` | lowered or added | raised or removed |
//! | `multipleOf` | added, or changed to a value the old one is not a multiple of | removed, or changed to a divisor of the old value |
//! | `uniqueItems` | became `true` | became `false` |
//! | `additionalProperties`, `unevaluatedProperties` | became `false`, or their schema narrowed | no longer `false`, or widened |
//! | `allOf` | branch added (reported by what it constrains) | branch removed |
//! | `anyOf`, `oneOf` | keyword added, branch removed | keyword removed, branch added |
//! | `if`/`then`/`else` | conditional added, `if` changed, `then`/`else` narrowed | conditional removed, widened |
//! | `not`, `contains` | added or (`not`) changed | removed |
//! | `dependentRequired` | dependency added or removed | |
//! | `$defs`, `definitions` | definition removed (a `$ref` to it from elsewhere breaks) | definition added |
//! | `deprecated` | | became `true` |
//!
//! The checker recurses into `properties`, `patternProperties`, `additionalProperties`,
//! `items`/`prefixItems`, `contains`, `propertyNames`, `dependentSchemas`, `$defs`,
//! `allOf`/`anyOf`/`oneOf` (branches matched by equality first, then by position),
//! and `then`/`else`. It follows `$ref`s: local ones (`#/$defs/money`, `#anchor`) inside
//! the same document and absolute or relative URIs through the resolver given to
//! [`check`]. When OLD and NEW reference the same target, the target is not compared
//! at the referencing location: a local target is compared where it is defined (under
//! `$defs`), a shared type in another document is checked by comparing that document's
//! own versions. Recursive schemas are compared coinductively (a pair of locations
//! already being compared is assumed compatible), so reference cycles terminate.
//!
//! Annotations (`title`, `description`, `examples`, `default`, `$comment`, …) never
//! produce a change, except `deprecated` becoming `true` (a note).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use serde_json::{Map, Value};

/// What kind of difference a [`Change`] is. Whether it breaks is in [`Change::breaking`];
/// most kinds have a fixed direction, a few (such as [`ChangeKind::ConstraintAdded`]) are
/// breaking or not depending on the keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A property of OLD is not in NEW (removed or renamed).
    PropertyRemoved,
    /// NEW has an optional property OLD did not have.
    PropertyAdded,
    /// A property is required in NEW but not in OLD (a new required property, a
    /// property that became required, or a new `dependentRequired` entry).
    RequiredAdded,
    /// A property required in OLD is optional in NEW (consumers may rely on it).
    RequiredRemoved,
    /// NEW rejects a JSON type OLD allowed.
    TypeNarrowed,
    /// NEW allows a JSON type OLD rejected.
    TypeWidened,
    /// An `enum` value of OLD is not allowed by NEW.
    EnumValueRemoved,
    /// NEW allows an `enum` value OLD did not.
    EnumValueAdded,
    /// NEW restricts the values with an `enum` where OLD allowed any value.
    EnumAdded,
    /// NEW dropped OLD's `enum` restriction.
    EnumRemoved,
    /// `const` changed, or NEW added a `const`.
    ConstChanged,
    /// NEW dropped OLD's `const`.
    ConstRemoved,
    /// NEW added a `pattern`.
    PatternAdded,
    /// The `pattern` changed (any change counts as tightening).
    PatternChanged,
    /// NEW dropped OLD's `pattern`.
    PatternRemoved,
    /// NEW added a `format`.
    FormatAdded,
    /// The `format` changed.
    FormatChanged,
    /// NEW dropped OLD's `format`.
    FormatRemoved,
    /// A bound (`minimum`, `maxLength`, `multipleOf`, …) is stricter in NEW.
    BoundTightened,
    /// A bound is looser in NEW.
    BoundLoosened,
    /// `additionalProperties` or `unevaluatedProperties` became `false`.
    AdditionalPropertiesClosed,
    /// `additionalProperties` or `unevaluatedProperties` is no longer `false`.
    AdditionalPropertiesOpened,
    /// NEW has a constraint OLD did not (a `not`, a conditional, a combinator, a
    /// `false` schema, …); whether it breaks depends on the keyword.
    ConstraintAdded,
    /// NEW dropped a constraint of OLD; whether it breaks depends on the keyword.
    ConstraintRemoved,
    /// A constraint changed in a way the checker cannot order (a different `if`, a
    /// different `not`, a different `contentEncoding`, …); treated as breaking.
    ConstraintChanged,
    /// NEW has a `$defs` entry OLD did not.
    DefinitionAdded,
    /// A `$defs` entry of OLD is not in NEW.
    DefinitionRemoved,
    /// The subschema became `deprecated`.
    Deprecated,
    /// Part of the schemas could not be compared (an unresolvable `$ref`, the depth
    /// limit); breaking, because compatibility cannot be shown.
    Unchecked,
}

/// One difference between OLD and NEW.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// JSON pointer to the subschema concerned, as a path through OLD from its root
    /// (`/properties/Fee`, `/properties/Lines/items/properties/Amount`); `""` is the
    /// root. Where a `$ref` was followed, the path continues from the referencing
    /// location, so it reads like the location in an event's `data`.
    pub pointer: String,
    /// What changed.
    pub kind: ChangeKind,
    /// Whether the change breaks producers or consumers built for OLD (a new major
    /// version is needed), as opposed to a compatible note.
    pub breaking: bool,
    /// Human-readable description, e.g. `type narrowed from [string, null] to string`.
    pub message: String,
}

impl fmt::Display for Change {
    /// One line: `BREAKING /properties/Fee: type narrowed from [string, number] to string`
    /// or `note /properties/Notes: property added (optional)`; the root is `(root)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.breaking { "BREAKING" } else { "note" };
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            self.pointer.as_str()
        };
        write!(f, "{level} {pointer}: {}", self.message)
    }
}

/// Whether any of `changes` is breaking.
pub fn is_breaking(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.breaking)
}

/// Compares the OLD and NEW versions of an event schema and returns every change, breaking
/// ones and notes, in the order the schemas were walked. An empty result means the two
/// are equivalent as far as the checker can tell.
///
/// `resolve` is called for `$ref`s into other documents. It gets the absolute URI of the
/// document, *without* the fragment (`https://civicbus.haliburton.ca/schemas/common/types/v1`),
/// and returns the whole document, or `None` if it is unknown; the checker applies the
/// fragment (a JSON pointer such as `/$defs/money`, or an `$anchor` name) itself and
/// resolves relative references against `$id`. It is called at most once per URI, and
/// never for a target OLD and NEW both reference. An unresolvable reference is reported
/// as a breaking [`ChangeKind::Unchecked`].
///
/// The function does no I/O itself.
pub fn check(old: &Value, new: &Value, resolve: &dyn Fn(&str) -> Option<Value>) -> Vec<Change> {
    let mut checker = Checker {
        resolve,
        old_root: Rc::new(Doc::new(DocKey::Old, None, old.clone())),
        new_root: Rc::new(Doc::new(DocKey::New, None, new.clone())),
        external: HashMap::new(),
        in_progress: HashSet::new(),
        changes: Vec::new(),
    };
    let old_loc = Loc::root(&checker.old_root);
    let new_loc = Loc::root(&checker.new_root);
    checker.compare(Some(old_loc), Some(new_loc), "", 0);

    let mut seen = HashSet::new();
    let mut changes = checker.changes;
    changes.retain(|c| seen.insert(c.clone()));
    changes
}

/// Deeper than this the comparison stops with an [`ChangeKind::Unchecked`] change.
const MAX_DEPTH: usize = 256;

/// Keywords that never change what validates.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$id",
    "$schema",
    "$anchor",
    "$dynamicAnchor",
    "$vocabulary",
];

/// The JSON types a `type` keyword can name, `integer` being covered by `number`.
const ALL_TYPES: &[&str] = &["null", "boolean", "object", "array", "number", "string"];

static TRUE_SCHEMA: Value = Value::Bool(true);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DocKey {
    Old,
    New,
    External(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Old,
    New,
}

/// A schema document: one of the two being compared, or one returned by the resolver.
struct Doc {
    key: DocKey,
    /// Base URI for relative references: the document's `$id` (without fragment), else
    /// the URI it was resolved from.
    base: Option<String>,
    root: Value,
}

impl Doc {
    fn new(key: DocKey, uri: Option<String>, root: Value) -> Self {
        let base = root
            .get("$id")
            .and_then(Value::as_str)
            .map(|id| strip_fragment(id).to_owned())
            .filter(|id| !id.is_empty())
            .or(uri);
        Doc { key, base, root }
    }
}

/// A location in a document.
#[derive(Clone)]
struct Loc {
    doc: Rc<Doc>,
    ptr: String,
}

impl Loc {
    fn root(doc: &Rc<Doc>) -> Self {
        Loc {
            doc: Rc::clone(doc),
            ptr: String::new(),
        }
    }

    fn value(&self) -> &Value {
        self.doc.root.pointer(&self.ptr).unwrap_or(&TRUE_SCHEMA)
    }

    fn join(&self, token: &str) -> Loc {
        Loc {
            doc: Rc::clone(&self.doc),
            ptr: join(&self.ptr, token),
        }
    }

    fn key(&self) -> (DocKey, String) {
        (self.doc.key.clone(), self.ptr.clone())
    }
}

/// A subschema of one side; `None` stands for an absent subschema, i.e. `true`.
type Node = Option<Loc>;

/// A subschema with its `$ref` chain flattened: keywords are looked up in the schema
/// itself first, then in what it references, and so on.
struct View {
    layers: Vec<Loc>,
    is_false: bool,
    /// A `$ref` in the chain could not be resolved: the view is incomplete.
    unresolved: bool,
}

impl View {
    fn any() -> Self {
        View {
            layers: Vec::new(),
            is_false: false,
            unresolved: false,
        }
    }

    /// Identifies the effective schema for the cycle guard: the locations of its
    /// layers, leaving out layers that are only a `$ref` (with annotations or `$defs`)
    /// pointing at the next one.
    fn key(&self) -> Vec<(DocKey, String)> {
        let last = self.layers.len().saturating_sub(1);
        self.layers
            .iter()
            .enumerate()
            .filter(|&(i, l)| i == last || !is_bare_ref(l.value()))
            .map(|(_, l)| l.key())
            .collect()
    }

    fn get(&self, keyword: &str) -> Option<(&Value, &Loc)> {
        self.layers
            .iter()
            .find_map(|l| l.value().get(keyword).map(|v| (v, l)))
    }

    fn value(&self, keyword: &str) -> Option<&Value> {
        self.get(keyword).map(|(v, _)| v)
    }

    fn child(&self, keyword: &str) -> Node {
        self.get(keyword).map(|(_, l)| l.join(keyword))
    }

    fn map(&self, keyword: &str) -> Option<(&Map<String, Value>, Loc)> {
        match self.get(keyword) {
            Some((Value::Object(m), l)) => Some((m, l.join(keyword))),
            _ => None,
        }
    }

    /// The subschemas of an array keyword (`allOf`, `prefixItems`, …).
    fn list(&self, keyword: &str) -> Vec<Loc> {
        match self.get(keyword) {
            Some((Value::Array(a), l)) => {
                let base = l.join(keyword);
                (0..a.len()).map(|i| base.join(&i.to_string())).collect()
            }
            _ => Vec::new(),
        }
    }

    fn number(&self, keyword: &str) -> Option<(f64, &Value)> {
        self.value(keyword).and_then(|v| v.as_f64().map(|n| (n, v)))
    }

    fn strings(&self, keyword: &str) -> Vec<&str> {
        match self.value(keyword) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// Where a `$ref` points, before the document is loaded.
enum Target {
    Doc(Rc<Doc>),
    External(String),
}

impl Target {
    fn key(&self) -> DocKey {
        match self {
            Target::Doc(d) => d.key.clone(),
            Target::External(uri) => DocKey::External(uri.clone()),
        }
    }
}

type PairKey = (Vec<(DocKey, String)>, Vec<(DocKey, String)>);

struct Checker<'a> {
    resolve: &'a dyn Fn(&str) -> Option<Value>,
    old_root: Rc<Doc>,
    new_root: Rc<Doc>,
    external: HashMap<String, Option<Rc<Doc>>>,
    /// Pairs of locations being compared further up the stack (cycle guard).
    in_progress: HashSet<PairKey>,
    changes: Vec<Change>,
}

impl Checker<'_> {
    fn report(&mut self, pointer: &str, kind: ChangeKind, breaking: bool, message: String) {
        self.changes.push(Change {
            pointer: pointer.to_owned(),
            kind,
            breaking,
            message,
        });
    }

    // ----- references -------------------------------------------------------------

    fn side_root(&self, side: Side) -> &Rc<Doc> {
        match side {
            Side::Old => &self.old_root,
            Side::New => &self.new_root,
        }
    }

    /// Splits a `$ref` into the document it points into and its (decoded) fragment.
    fn locate(&self, from: &Loc, side: Side, reference: &str) -> (Target, String) {
        let (uri, fragment) = match reference.split_once('#') {
            Some((u, f)) => (u, percent_decode(f)),
            None => (reference, String::new()),
        };
        if uri.is_empty() {
            return (Target::Doc(Rc::clone(&from.doc)), fragment);
        }
        let absolute = resolve_uri(from.doc.base.as_deref(), uri);
        if from.doc.base.as_deref() == Some(absolute.as_str()) {
            return (Target::Doc(Rc::clone(&from.doc)), fragment);
        }
        let root = self.side_root(side);
        if root.base.as_deref() == Some(absolute.as_str()) {
            return (Target::Doc(Rc::clone(root)), fragment);
        }
        (Target::External(absolute), fragment)
    }

    fn load(&mut self, target: Target) -> Option<Rc<Doc>> {
        match target {
            Target::Doc(doc) => Some(doc),
            Target::External(uri) => {
                if let Some(cached) = self.external.get(&uri) {
                    return cached.clone();
                }
                let doc = (self.resolve)(&uri).map(|root| {
                    Rc::new(Doc::new(
                        DocKey::External(uri.clone()),
                        Some(uri.clone()),
                        root,
                    ))
                });
                self.external.insert(uri, doc.clone());
                doc
            }
        }
    }

    fn follow(&mut self, from: &Loc, side: Side, reference: &str) -> Option<Loc> {
        let (target, fragment) = self.locate(from, side, reference);
        let doc = self.load(target)?;
        let ptr = fragment_pointer(&doc.root, &fragment)?;
        Some(Loc { doc, ptr })
    }

    /// Whether two `$ref`s (OLD's and NEW's) point at corresponding targets: the same
    /// URI, or the same location in the two documents being compared.
    fn same_target(&self, old: &Loc, old_ref: &str, new: &Loc, new_ref: &str) -> bool {
        let (old_target, old_fragment) = self.locate(old, Side::Old, old_ref);
        let (new_target, new_fragment) = self.locate(new, Side::New, new_ref);
        match (old_target.key(), new_target.key()) {
            (DocKey::Old, DocKey::New) => {
                let (Target::Doc(od), Target::Doc(nd)) = (&old_target, &new_target) else {
                    return false;
                };
                let old_ptr = fragment_pointer(&od.root, &old_fragment);
                old_ptr.is_some() && old_ptr == fragment_pointer(&nd.root, &new_fragment)
            }
            (o, n) => o == n && old_fragment == new_fragment,
        }
    }

    /// Flattens the `$ref` chain of a node.
    fn deref(&mut self, node: &Node, side: Side, pointer: &str) -> View {
        let Some(start) = node else {
            return View::any();
        };
        let mut layers: Vec<Loc> = Vec::new();
        let mut seen = HashSet::new();
        let mut current = start.clone();
        let mut unresolved = false;
        while seen.insert(current.key()) {
            let reference = current
                .value()
                .get("$ref")
                .and_then(Value::as_str)
                .map(str::to_owned);
            layers.push(current.clone());
            let Some(reference) = reference else {
                break;
            };
            match self.follow(&current, side, &reference) {
                Some(next) => current = next,
                None => {
                    let which = match side {
                        Side::Old => "OLD",
                        Side::New => "NEW",
                    };
                    self.report(
                        pointer,
                        ChangeKind::Unchecked,
                        true,
                        format!("cannot resolve $ref {reference} in {which}; not compared"),
                    );
                    unresolved = true;
                    break;
                }
            }
        }
        let is_false = layers.iter().any(|l| l.value() == &Value::Bool(false));
        View {
            layers,
            is_false,
            unresolved,
        }
    }

    fn views(&mut self, old: &Node, new: &Node, pointer: &str) -> (View, View) {
        if let (Some(o), Some(n)) = (old, new) {
            let old_ref = o.value().get("$ref").and_then(Value::as_str);
            let new_ref = n.value().get("$ref").and_then(Value::as_str);
            if let (Some(or), Some(nr)) = (old_ref, new_ref)
                && self.same_target(o, or, n, nr)
            {
                // Compare only the keywords next to the shared $ref.
                let only = |l: &Loc| View {
                    layers: vec![l.clone()],
                    is_false: false,
                    unresolved: false,
                };
                return (only(o), only(n));
            }
        }
        (
            self.deref(old, Side::Old, pointer),
            self.deref(new, Side::New, pointer),
        )
    }

    // ----- comparison -------------------------------------------------------------

    fn compare(&mut self, old: Node, new: Node, pointer: &str, depth: usize) {
        if old.is_none() && new.is_none() {
            return;
        }
        if depth > MAX_DEPTH {
            self.report(
                pointer,
                ChangeKind::Unchecked,
                true,
                format!("schemas nested deeper than {MAX_DEPTH} levels; not compared"),
            );
            return;
        }
        let (ov, nv) = self.views(&old, &new, pointer);
        if ov.unresolved || nv.unresolved {
            return;
        }
        let key: PairKey = (ov.key(), nv.key());
        if !self.in_progress.insert(key.clone()) {
            // Already being compared further up: a reference cycle.
            return;
        }
        self.compare_views(&ov, &nv, pointer, depth);
        self.in_progress.remove(&key);
    }

    fn compare_views(&mut self, ov: &View, nv: &View, pointer: &str, depth: usize) {
        match (ov.is_false, nv.is_false) {
            (true, true) => return,
            (false, true) => {
                self.report(
                    pointer,
                    ChangeKind::ConstraintAdded,
                    true,
                    "schema is now false: no value is allowed".into(),
                );
                return;
            }
            (true, false) => {
                self.report(
                    pointer,
                    ChangeKind::ConstraintRemoved,
                    false,
                    "schema was false: values are now allowed".into(),
                );
                return;
            }
            (false, false) => {}
        }
        self.types(ov, nv, pointer);
        self.values(ov, nv, pointer);
        self.string_keyword(ov, nv, pointer, "pattern");
        self.string_keyword(ov, nv, pointer, "format");
        self.string_keyword(ov, nv, pointer, "contentEncoding");
        self.string_keyword(ov, nv, pointer, "contentMediaType");
        self.numeric_bounds(ov, nv, pointer);
        self.count_bounds(ov, nv, pointer);
        self.multiple_of(ov, nv, pointer);
        self.flag(ov, nv, pointer, "uniqueItems");
        self.deprecated(ov, nv, pointer);
        self.object(ov, nv, pointer, depth);
        self.array(ov, nv, pointer, depth);
        self.combinators(ov, nv, pointer, depth);
        self.conditional(ov, nv, pointer, depth);
        self.not(ov, nv, pointer);
        self.definitions(ov, nv, pointer, depth);
    }

    fn types(&mut self, ov: &View, nv: &View, pointer: &str) {
        let old = type_set(ov.value("type"));
        let new = type_set(nv.value("type"));
        let narrowed = match (&old, &new) {
            (_, None) => false,
            (None, Some(n)) => !covers_all(n),
            (Some(o), Some(n)) => o.iter().any(|t| !covers(n, t)),
        };
        let widened = match (&old, &new) {
            (None, _) => false,
            (Some(o), None) => !covers_all(o),
            (Some(o), Some(n)) => n.iter().any(|t| !covers(o, t)),
        };
        let from = format_types(old.as_deref());
        let to = format_types(new.as_deref());
        match (narrowed, widened) {
            (true, true) => self.report(
                pointer,
                ChangeKind::TypeNarrowed,
                true,
                format!("type changed from {from} to {to}"),
            ),
            (true, false) => self.report(
                pointer,
                ChangeKind::TypeNarrowed,
                true,
                format!("type narrowed from {from} to {to}"),
            ),
            (false, true) => self.report(
                pointer,
                ChangeKind::TypeWidened,
                false,
                format!("type widened from {from} to {to}"),
            ),
            (false, false) => {}
        }
    }

    /// `enum` and `const` together: the set of allowed values.
    fn values(&mut self, ov: &View, nv: &View, pointer: &str) {
        let allowed = |v: &View| -> Option<(Vec<Value>, bool)> {
            if let Some(c) = v.value("const") {
                return Some((vec![c.clone()], true));
            }
            match v.value("enum") {
                Some(Value::Array(a)) => Some((a.clone(), false)),
                _ => None,
            }
        };
        match (allowed(ov), allowed(nv)) {
            (None, None) => {}
            (None, Some((n, true))) => self.report(
                pointer,
                ChangeKind::ConstChanged,
                true,
                format!("const added: {}", list_values(&n)),
            ),
            (None, Some((n, false))) => self.report(
                pointer,
                ChangeKind::EnumAdded,
                true,
                format!("enum added: values restricted to {}", list_values(&n)),
            ),
            (Some((o, true)), None) => self.report(
                pointer,
                ChangeKind::ConstRemoved,
                false,
                format!("const removed (was {})", list_values(&o)),
            ),
            (Some((_, false)), None) => self.report(
                pointer,
                ChangeKind::EnumRemoved,
                false,
                "enum removed: any value allowed".into(),
            ),
            (Some((o, true)), Some((n, true))) => {
                if !o.iter().zip(&n).all(|(a, b)| json_eq(a, b)) {
                    self.report(
                        pointer,
                        ChangeKind::ConstChanged,
                        true,
                        format!(
                            "const changed from {} to {}",
                            list_values(&o),
                            list_values(&n)
                        ),
                    );
                }
            }
            (Some((o, _)), Some((n, _))) => {
                let removed: Vec<Value> = o
                    .iter()
                    .filter(|v| !n.iter().any(|w| json_eq(v, w)))
                    .cloned()
                    .collect();
                let added: Vec<Value> = n
                    .iter()
                    .filter(|v| !o.iter().any(|w| json_eq(v, w)))
                    .cloned()
                    .collect();
                if !removed.is_empty() {
                    self.report(
                        pointer,
                        ChangeKind::EnumValueRemoved,
                        true,
                        format!(
                            "{} removed: {}",
                            plural(removed.len(), "enum value", "enum values"),
                            list_values(&removed)
                        ),
                    );
                }
                if !added.is_empty() {
                    self.report(
                        pointer,
                        ChangeKind::EnumValueAdded,
                        false,
                        format!(
                            "{} added: {}",
                            plural(added.len(), "enum value", "enum values"),
                            list_values(&added)
                        ),
                    );
                }
            }
        }
    }

    /// `pattern`, `format`, `contentEncoding`, `contentMediaType`: adding or changing
    /// one is breaking, removing one is a note.
    fn string_keyword(&mut self, ov: &View, nv: &View, pointer: &str, keyword: &str) {
        let (added, changed, removed) = match keyword {
            "pattern" => (
                ChangeKind::PatternAdded,
                ChangeKind::PatternChanged,
                ChangeKind::PatternRemoved,
            ),
            "format" => (
                ChangeKind::FormatAdded,
                ChangeKind::FormatChanged,
                ChangeKind::FormatRemoved,
            ),
            _ => (
                ChangeKind::ConstraintAdded,
                ChangeKind::ConstraintChanged,
                ChangeKind::ConstraintRemoved,
            ),
        };
        match (ov.value(keyword), nv.value(keyword)) {
            (None, None) => {}
            (None, Some(n)) => {
                self.report(
                    pointer,
                    added,
                    true,
                    format!("{keyword} added: {}", show(n)),
                );
            }
            (Some(o), None) => self.report(
                pointer,
                removed,
                false,
                format!("{keyword} removed (was {})", show(o)),
            ),
            (Some(o), Some(n)) => {
                if !json_eq(o, n) {
                    self.report(
                        pointer,
                        changed,
                        true,
                        format!("{keyword} changed from {} to {}", show(o), show(n)),
                    );
                }
            }
        }
    }

    /// `minimum`/`exclusiveMinimum` and `maximum`/`exclusiveMaximum`, each pair taken
    /// together as one effective bound.
    fn numeric_bounds(&mut self, ov: &View, nv: &View, pointer: &str) {
        for lower in [true, false] {
            let old = effective_bound(ov, lower);
            let new = effective_bound(nv, lower);
            let Some(tighter) = compare_bounds(old.as_ref(), new.as_ref(), lower) else {
                continue;
            };
            let (kind, breaking) = if tighter {
                (ChangeKind::BoundTightened, true)
            } else {
                (ChangeKind::BoundLoosened, false)
            };
            let message = match (&old, &new) {
                (None, Some(n)) => format!("{} added: {}", n.keyword, show(n.raw)),
                (Some(o), None) => format!("{} removed (was {})", o.keyword, show(o.raw)),
                (Some(o), Some(n)) if o.keyword == n.keyword => {
                    let raised = n.value > o.value;
                    format!(
                        "{} {} from {} to {}",
                        n.keyword,
                        if raised { "raised" } else { "lowered" },
                        show(o.raw),
                        show(n.raw)
                    )
                }
                (Some(o), Some(n)) => format!(
                    "{} bound {} from {} {} to {} {}",
                    if lower { "lower" } else { "upper" },
                    if tighter { "tightened" } else { "loosened" },
                    o.keyword,
                    show(o.raw),
                    n.keyword,
                    show(n.raw)
                ),
                (None, None) => continue,
            };
            self.report(pointer, kind, breaking, message);
        }
    }

    /// Length, item, property and `contains` counts.
    fn count_bounds(&mut self, ov: &View, nv: &View, pointer: &str) {
        const COUNTS: &[(&str, bool, f64)] = &[
            ("minLength", true, 0.0),
            ("maxLength", false, f64::INFINITY),
            ("minItems", true, 0.0),
            ("maxItems", false, f64::INFINITY),
            ("minProperties", true, 0.0),
            ("maxProperties", false, f64::INFINITY),
            ("minContains", true, 1.0),
            ("maxContains", false, f64::INFINITY),
        ];
        for &(keyword, is_min, default) in COUNTS {
            let old = ov.number(keyword);
            let new = nv.number(keyword);
            let o = old.map_or(default, |(n, _)| n);
            let n = new.map_or(default, |(n, _)| n);
            if o == n {
                continue;
            }
            let tighter = if is_min { n > o } else { n < o };
            let (kind, breaking) = if tighter {
                (ChangeKind::BoundTightened, true)
            } else {
                (ChangeKind::BoundLoosened, false)
            };
            let message = match (old, new) {
                (None, Some((_, raw))) => format!("{keyword} added: {}", show(raw)),
                (Some((_, raw)), None) => format!("{keyword} removed (was {})", show(raw)),
                (Some((_, o_raw)), Some((_, n_raw))) => format!(
                    "{keyword} {} from {} to {}",
                    if n > o { "raised" } else { "lowered" },
                    show(o_raw),
                    show(n_raw)
                ),
                (None, None) => continue,
            };
            self.report(pointer, kind, breaking, message);
        }
    }

    fn multiple_of(&mut self, ov: &View, nv: &View, pointer: &str) {
        match (ov.number("multipleOf"), nv.number("multipleOf")) {
            (None, None) => {}
            (None, Some((_, raw))) => self.report(
                pointer,
                ChangeKind::BoundTightened,
                true,
                format!("multipleOf added: {}", show(raw)),
            ),
            (Some((_, raw)), None) => self.report(
                pointer,
                ChangeKind::BoundLoosened,
                false,
                format!("multipleOf removed (was {})", show(raw)),
            ),
            (Some((o, o_raw)), Some((n, n_raw))) => {
                if o == n {
                    return;
                }
                // Every multiple of o is a multiple of n iff o / n is an integer.
                let ratio = o / n;
                let loosened = n > 0.0 && (ratio - ratio.round()).abs() <= 1e-9 * ratio.abs();
                let message = format!("multipleOf changed from {} to {}", show(o_raw), show(n_raw));
                if loosened {
                    self.report(pointer, ChangeKind::BoundLoosened, false, message);
                } else {
                    self.report(pointer, ChangeKind::BoundTightened, true, message);
                }
            }
        }
    }

    /// A boolean assertion such as `uniqueItems`: becoming `true` is breaking.
    fn flag(&mut self, ov: &View, nv: &View, pointer: &str, keyword: &str) {
        let old = ov.value(keyword).and_then(Value::as_bool).unwrap_or(false);
        let new = nv.value(keyword).and_then(Value::as_bool).unwrap_or(false);
        match (old, new) {
            (false, true) => self.report(
                pointer,
                ChangeKind::ConstraintAdded,
                true,
                format!("{keyword} added"),
            ),
            (true, false) => self.report(
                pointer,
                ChangeKind::ConstraintRemoved,
                false,
                format!("{keyword} removed"),
            ),
            _ => {}
        }
    }

    fn deprecated(&mut self, ov: &View, nv: &View, pointer: &str) {
        let old = ov
            .value("deprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let new = nv
            .value("deprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if new && !old {
            self.report(pointer, ChangeKind::Deprecated, false, "deprecated".into());
        }
    }

    fn object(&mut self, ov: &View, nv: &View, pointer: &str, depth: usize) {
        let empty = Map::new();
        let old_props = ov.map("properties");
        let new_props = nv.map("properties");
        let (old_map, new_map) = (
            old_props.as_ref().map_or(&empty, |(m, _)| m),
            new_props.as_ref().map_or(&empty, |(m, _)| m),
        );
        let old_required: Vec<&str> = ov.strings("required");
        let new_required: Vec<&str> = nv.strings("required");

        for (name, old_schema) in old_map {
            let at = join(&join(pointer, "properties"), name);
            match (new_map.get(name), &old_props, &new_props) {
                (Some(_), Some((_, old_loc)), Some((_, new_loc))) => {
                    self.compare(
                        Some(old_loc.join(name)),
                        Some(new_loc.join(name)),
                        &at,
                        depth + 1,
                    );
                }
                _ => {
                    let candidates: Vec<&str> = new_map
                        .iter()
                        .filter(|(k, v)| !old_map.contains_key(*k) && semantic_eq(old_schema, v))
                        .map(|(k, _)| k.as_str())
                        .collect();
                    let message = if candidates.is_empty() {
                        "property removed".to_owned()
                    } else {
                        format!("property removed (renamed to {}?)", candidates.join(" or "))
                    };
                    self.report(&at, ChangeKind::PropertyRemoved, true, message);
                }
            }
        }
        for name in new_map.keys().filter(|k| !old_map.contains_key(*k)) {
            let at = join(&join(pointer, "properties"), name);
            let required = new_required.contains(&name.as_str());
            if required && !old_required.contains(&name.as_str()) {
                self.report(
                    &at,
                    ChangeKind::RequiredAdded,
                    true,
                    "property added (required)".into(),
                );
            } else if required {
                self.report(
                    &at,
                    ChangeKind::PropertyAdded,
                    false,
                    "property added (it was already required)".into(),
                );
            } else {
                self.report(
                    &at,
                    ChangeKind::PropertyAdded,
                    false,
                    "property added (optional)".into(),
                );
            }
        }
        for name in &new_required {
            let newly_defined = new_map.contains_key(*name) && !old_map.contains_key(*name);
            if !old_required.contains(name) && !newly_defined {
                let at = join(&join(pointer, "properties"), name);
                self.report(
                    &at,
                    ChangeKind::RequiredAdded,
                    true,
                    "property became required".into(),
                );
            }
        }
        for name in &old_required {
            let removed = old_map.contains_key(*name) && !new_map.contains_key(*name);
            if !new_required.contains(name) && !removed {
                let at = join(&join(pointer, "properties"), name);
                self.report(
                    &at,
                    ChangeKind::RequiredRemoved,
                    true,
                    "property no longer required (consumers may rely on it)".into(),
                );
            }
        }

        self.closed_slot(ov, nv, pointer, "additionalProperties", depth);
        self.closed_slot(ov, nv, pointer, "unevaluatedProperties", depth);
        self.pattern_properties(ov, nv, pointer, depth);
        self.compare(
            ov.child("propertyNames"),
            nv.child("propertyNames"),
            &join(pointer, "propertyNames"),
            depth + 1,
        );
        self.dependent_required(ov, nv, pointer);
        self.keyed_schemas(ov, nv, pointer, "dependentSchemas", depth);
    }

    /// `additionalProperties`/`unevaluatedProperties`: becoming `false` is reported as
    /// such; otherwise the subschemas are compared (absent meaning `true`).
    fn closed_slot(&mut self, ov: &View, nv: &View, pointer: &str, keyword: &str, depth: usize) {
        let is_false = |v: &View| v.value(keyword) == Some(&Value::Bool(false));
        let at = join(pointer, keyword);
        match (is_false(ov), is_false(nv)) {
            (true, true) => {}
            (false, true) => self.report(
                &at,
                ChangeKind::AdditionalPropertiesClosed,
                true,
                format!("{keyword} set to false: properties not listed are no longer allowed"),
            ),
            (true, false) => self.report(
                &at,
                ChangeKind::AdditionalPropertiesOpened,
                false,
                format!("{keyword} no longer false: properties not listed are now allowed"),
            ),
            (false, false) => self.compare(ov.child(keyword), nv.child(keyword), &at, depth + 1),
        }
    }

    /// `patternProperties`, matched by pattern. A pattern only one side has is compared
    /// with the other side's `additionalProperties`, which governed (or now governs) the
    /// properties it matches.
    fn pattern_properties(&mut self, ov: &View, nv: &View, pointer: &str, depth: usize) {
        let old = ov.map("patternProperties");
        let new = nv.map("patternProperties");
        let empty = Map::new();
        let old_map = old.as_ref().map_or(&empty, |(m, _)| m);
        let new_map = new.as_ref().map_or(&empty, |(m, _)| m);
        let mut patterns: Vec<&String> = old_map.keys().collect();
        patterns.extend(new_map.keys().filter(|k| !old_map.contains_key(*k)));
        for pattern in patterns {
            let old_node = match &old {
                Some((m, l)) if m.contains_key(pattern) => Some(l.join(pattern)),
                _ => ov.child("additionalProperties"),
            };
            let new_node = match &new {
                Some((m, l)) if m.contains_key(pattern) => Some(l.join(pattern)),
                _ => nv.child("additionalProperties"),
            };
            let at = join(&join(pointer, "patternProperties"), pattern);
            self.compare(old_node, new_node, &at, depth + 1);
        }
    }

    fn dependent_required(&mut self, ov: &View, nv: &View, pointer: &str) {
        let names = |v: &View, key: &str| -> Vec<String> {
            match v.value("dependentRequired").and_then(|m| m.get(key)) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let keys = |v: &View| -> Vec<String> {
            match v.value("dependentRequired") {
                Some(Value::Object(m)) => m.keys().cloned().collect(),
                _ => Vec::new(),
            }
        };
        let mut all = keys(ov);
        for k in keys(nv) {
            if !all.contains(&k) {
                all.push(k);
            }
        }
        for key in all {
            let old = names(ov, &key);
            let new = names(nv, &key);
            let at = join(&join(pointer, "dependentRequired"), &key);
            for name in new.iter().filter(|n| !old.contains(n)) {
                self.report(
                    &at,
                    ChangeKind::RequiredAdded,
                    true,
                    format!("{name} now required when {key} is present"),
                );
            }
            for name in old.iter().filter(|n| !new.contains(n)) {
                self.report(
                    &at,
                    ChangeKind::RequiredRemoved,
                    true,
                    format!("{name} no longer required when {key} is present"),
                );
            }
        }
    }

    /// A map of subschemas matched by key, an absent entry meaning `true`.
    fn keyed_schemas(&mut self, ov: &View, nv: &View, pointer: &str, keyword: &str, depth: usize) {
        let old = ov.map(keyword);
        let new = nv.map(keyword);
        let mut keys: Vec<String> = old
            .as_ref()
            .map(|(m, _)| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Some((m, _)) = &new {
            let extra: Vec<String> = m.keys().filter(|k| !keys.contains(*k)).cloned().collect();
            keys.extend(extra);
        }
        for key in keys {
            let node = |side: &Option<(&Map<String, Value>, Loc)>| match side {
                Some((m, l)) if m.contains_key(&key) => Some(l.join(&key)),
                _ => None,
            };
            let at = join(&join(pointer, keyword), &key);
            self.compare(node(&old), node(&new), &at, depth + 1);
        }
    }

    fn array(&mut self, ov: &View, nv: &View, pointer: &str, depth: usize) {
        let (old_prefix, old_rest, old_keyword) = array_parts(ov);
        let (new_prefix, new_rest, _) = array_parts(nv);
        for i in 0..old_prefix.len().max(new_prefix.len()) {
            let old_node = old_prefix.get(i).cloned().or_else(|| old_rest.clone());
            let new_node = new_prefix.get(i).cloned().or_else(|| new_rest.clone());
            let at = join(&join(pointer, old_keyword), &i.to_string());
            self.compare(old_node, new_node, &at, depth + 1);
        }
        self.compare(old_rest, new_rest, &join(pointer, "items"), depth + 1);
        self.compare(
            ov.child("unevaluatedItems"),
            nv.child("unevaluatedItems"),
            &join(pointer, "unevaluatedItems"),
            depth + 1,
        );

        let at = join(pointer, "contains");
        match (ov.child("contains"), nv.child("contains")) {
            (None, None) => {}
            (None, Some(_)) => self.report(
                &at,
                ChangeKind::ConstraintAdded,
                true,
                "contains added: arrays must contain a matching item".into(),
            ),
            (Some(_), None) => self.report(
                &at,
                ChangeKind::ConstraintRemoved,
                false,
                "contains removed".into(),
            ),
            (old, new) => self.compare(old, new, &at, depth + 1),
        }
    }

    fn combinators(&mut self, ov: &View, nv: &View, pointer: &str, depth: usize) {
        for keyword in ["allOf", "anyOf", "oneOf"] {
            let conjunction = keyword == "allOf";
            let old = ov.list(keyword);
            let new = nv.list(keyword);
            if old.is_empty() && new.is_empty() {
                continue;
            }
            let at = join(pointer, keyword);
            if !conjunction {
                if old.is_empty() {
                    if !new.iter().any(|l| is_trivially_true(l.value())) {
                        self.report(
                            &at,
                            ChangeKind::ConstraintAdded,
                            true,
                            format!("{keyword} added: values must match one of its branches"),
                        );
                    }
                    continue;
                }
                if new.is_empty() {
                    self.report(
                        &at,
                        ChangeKind::ConstraintRemoved,
                        false,
                        format!("{keyword} removed"),
                    );
                    continue;
                }
            }

            // Pair equal branches first, then the rest by position.
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            let mut new_used = vec![false; new.len()];
            let mut old_used = vec![false; old.len()];
            for (i, o) in old.iter().enumerate() {
                if let Some(j) =
                    (0..new.len()).find(|&j| !new_used[j] && semantic_eq(o.value(), new[j].value()))
                {
                    new_used[j] = true;
                    old_used[i] = true;
                    pairs.push((i, j));
                }
            }
            let old_rest: Vec<usize> = (0..old.len()).filter(|&i| !old_used[i]).collect();
            let new_rest: Vec<usize> = (0..new.len()).filter(|&j| !new_used[j]).collect();
            pairs.extend(old_rest.iter().copied().zip(new_rest.iter().copied()));
            pairs.sort_unstable();
            for (i, j) in pairs {
                let branch = join(&at, &i.to_string());
                self.compare(
                    Some(old[i].clone()),
                    Some(new[j].clone()),
                    &branch,
                    depth + 1,
                );
            }
            for &i in old_rest.iter().skip(new_rest.len()) {
                let branch = join(&at, &i.to_string());
                if conjunction {
                    // A dropped allOf branch only loosens: report what it constrained.
                    self.compare(Some(old[i].clone()), None, &branch, depth + 1);
                } else {
                    self.report(
                        &branch,
                        ChangeKind::ConstraintRemoved,
                        true,
                        format!("{keyword} branch removed: values matching only it are rejected"),
                    );
                }
            }
            for &j in new_rest.iter().skip(old_rest.len()) {
                let branch = join(&at, &j.to_string());
                if conjunction {
                    // A new allOf branch constrains: report what it constrains.
                    self.compare(None, Some(new[j].clone()), &branch, depth + 1);
                } else {
                    self.report(
                        &branch,
                        ChangeKind::ConstraintAdded,
                        false,
                        format!("{keyword} branch added"),
                    );
                }
            }
        }
    }

    fn conditional(&mut self, ov: &View, nv: &View, pointer: &str, depth: usize) {
        let active = |v: &View| {
            v.value("if").is_some() && (v.value("then").is_some() || v.value("else").is_some())
        };
        let at = join(pointer, "if");
        match (active(ov), active(nv)) {
            (false, false) => {}
            (false, true) => self.report(
                &at,
                ChangeKind::ConstraintAdded,
                true,
                "conditional (if/then/else) added".into(),
            ),
            (true, false) => self.report(
                &at,
                ChangeKind::ConstraintRemoved,
                false,
                "conditional (if/then/else) removed".into(),
            ),
            (true, true) => {
                let same_if = match (ov.value("if"), nv.value("if")) {
                    (Some(o), Some(n)) => semantic_eq(o, n),
                    _ => false,
                };
                if !same_if {
                    self.report(
                        &at,
                        ChangeKind::ConstraintChanged,
                        true,
                        "if condition changed: then/else not compared".into(),
                    );
                    return;
                }
                for keyword in ["then", "else"] {
                    self.compare(
                        ov.child(keyword),
                        nv.child(keyword),
                        &join(pointer, keyword),
                        depth + 1,
                    );
                }
            }
        }
    }

    fn not(&mut self, ov: &View, nv: &View, pointer: &str) {
        let at = join(pointer, "not");
        match (ov.value("not"), nv.value("not")) {
            (None, None) => {}
            (None, Some(_)) => {
                self.report(&at, ChangeKind::ConstraintAdded, true, "not added".into());
            }
            (Some(_), None) => {
                self.report(
                    &at,
                    ChangeKind::ConstraintRemoved,
                    false,
                    "not removed".into(),
                );
            }
            (Some(o), Some(n)) => {
                if !semantic_eq(o, n) {
                    self.report(
                        &at,
                        ChangeKind::ConstraintChanged,
                        true,
                        "not changed (direction not determined)".into(),
                    );
                }
            }
        }
    }

    fn definitions(&mut self, ov: &View, nv: &View, pointer: &str, depth: usize) {
        for keyword in ["$defs", "definitions"] {
            let old = ov.map(keyword);
            let new = nv.map(keyword);
            let empty = Map::new();
            let old_map = old.as_ref().map_or(&empty, |(m, _)| m);
            let new_map = new.as_ref().map_or(&empty, |(m, _)| m);
            for name in old_map.keys() {
                let at = join(&join(pointer, keyword), name);
                match (&old, &new) {
                    (Some((_, ol)), Some((nm, nl))) if nm.contains_key(name) => {
                        self.compare(Some(ol.join(name)), Some(nl.join(name)), &at, depth + 1);
                    }
                    _ => self.report(
                        &at,
                        ChangeKind::DefinitionRemoved,
                        true,
                        "definition removed: a $ref to it breaks".into(),
                    ),
                }
            }
            for name in new_map.keys().filter(|k| !old_map.contains_key(*k)) {
                let at = join(&join(pointer, keyword), name);
                self.report(
                    &at,
                    ChangeKind::DefinitionAdded,
                    false,
                    "definition added".into(),
                );
            }
        }
    }
}

// ----- helpers ------------------------------------------------------------------------

/// Appends a reference token to a JSON pointer, escaping `~` and `/`.
fn join(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

fn strip_fragment(uri: &str) -> &str {
    uri.split_once('#').map_or(uri, |(u, _)| u)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON pointer a `$ref` fragment designates in `root`: the fragment itself if it is a
/// pointer, else the location of the subschema whose `$anchor` it names.
fn fragment_pointer(root: &Value, fragment: &str) -> Option<String> {
    if fragment.is_empty() || fragment.starts_with('/') {
        return root.pointer(fragment).map(|_| fragment.to_owned());
    }
    find_anchor(root, fragment, String::new())
}

fn find_anchor(value: &Value, anchor: &str, pointer: String) -> Option<String> {
    match value {
        Value::Object(m) => {
            if m.get("$anchor").and_then(Value::as_str) == Some(anchor) {
                return Some(pointer);
            }
            m.iter()
                .find_map(|(k, v)| find_anchor(v, anchor, join(&pointer, k)))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_anchor(v, anchor, join(&pointer, &i.to_string()))),
        _ => None,
    }
}

fn has_scheme(uri: &str) -> bool {
    let Some((scheme, _)) = uri.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Resolves a URI reference (without fragment) against a base URI (RFC 3986, the parts
/// schema `$ref`s use: absolute, network-path, absolute-path and relative-path).
fn resolve_uri(base: Option<&str>, reference: &str) -> String {
    if has_scheme(reference) {
        return reference.to_owned();
    }
    let Some(base) = base.filter(|b| has_scheme(b)) else {
        return reference.to_owned();
    };
    let base = base.split(['?', '#']).next().unwrap_or(base);
    let Some((scheme, rest)) = base.split_once(':') else {
        return reference.to_owned();
    };
    if reference.is_empty() {
        return base.to_owned();
    }
    if reference.starts_with("//") {
        return format!("{scheme}:{reference}");
    }
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(i) => (format!("//{}", &after[..i]), &after[i..]),
            None => (format!("//{after}"), ""),
        },
        None => (String::new(), rest),
    };
    let merged = if reference.starts_with('/') {
        reference.to_owned()
    } else {
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        format!("{dir}{reference}")
    };
    format!("{scheme}:{authority}{}", remove_dot_segments(&merged))
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn type_set(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn covers(set: &[String], t: &str) -> bool {
    set.iter()
        .any(|s| s == t || (t == "integer" && s == "number"))
}

fn covers_all(set: &[String]) -> bool {
    ALL_TYPES.iter().all(|t| covers(set, t))
}

fn format_types(set: Option<&[String]>) -> String {
    match set {
        None => "any".to_owned(),
        Some([one]) => one.clone(),
        Some(many) => format!("[{}]", many.join(", ")),
    }
}

fn list_values(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A keyword value for a message: strings without JSON quotes, the rest as JSON.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

struct Bound<'v> {
    value: f64,
    exclusive: bool,
    keyword: &'static str,
    raw: &'v Value,
}

/// The effective lower (or upper) bound of a number: the tighter of `minimum` and
/// `exclusiveMinimum` (draft-04 boolean `exclusiveMinimum` understood).
fn effective_bound(view: &View, lower: bool) -> Option<Bound<'_>> {
    let (inclusive_kw, exclusive_kw) = if lower {
        ("minimum", "exclusiveMinimum")
    } else {
        ("maximum", "exclusiveMaximum")
    };
    let exclusive_raw = view.value(exclusive_kw);
    let draft4_exclusive = exclusive_raw == Some(&Value::Bool(true));
    let inclusive = view.number(inclusive_kw).map(|(value, raw)| Bound {
        value,
        exclusive: draft4_exclusive,
        keyword: inclusive_kw,
        raw,
    });
    let exclusive = view.number(exclusive_kw).map(|(value, raw)| Bound {
        value,
        exclusive: true,
        keyword: exclusive_kw,
        raw,
    });
    match (inclusive, exclusive) {
        (Some(a), Some(b)) => {
            if compare_bounds(Some(&a), Some(&b), lower) == Some(true) {
                Some(b)
            } else {
                Some(a)
            }
        }
        (a, b) => a.or(b),
    }
}

/// `Some(true)` if `new` is tighter than `old`, `Some(false)` if looser, `None` if equal.
fn compare_bounds(old: Option<&Bound<'_>>, new: Option<&Bound<'_>>, lower: bool) -> Option<bool> {
    match (old, new) {
        (None, None) => None,
        (None, Some(_)) => Some(true),
        (Some(_), None) => Some(false),
        (Some(o), Some(n)) => {
            if o.value == n.value {
                (o.exclusive != n.exclusive).then_some(n.exclusive)
            } else if lower {
                Some(n.value > o.value)
            } else {
                Some(n.value < o.value)
            }
        }
    }
}

/// The prefix item schemas, the schema for the remaining items, and the keyword the
/// prefix is under (`prefixItems`, or a draft-2019 `items` array).
fn array_parts(view: &View) -> (Vec<Loc>, Node, &'static str) {
    if matches!(view.value("prefixItems"), Some(Value::Array(_))) {
        (view.list("prefixItems"), view.child("items"), "prefixItems")
    } else if matches!(view.value("items"), Some(Value::Array(_))) {
        (view.list("items"), view.child("additionalItems"), "items")
    } else {
        (Vec::new(), view.child("items"), "prefixItems")
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A schema that only references another: `$ref` plus annotations or `$defs`.
fn is_bare_ref(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.keys().all(|k| {
            matches!(k.as_str(), "$ref" | "$defs" | "definitions")
                || ANNOTATIONS.contains(&k.as_str())
        }),
        _ => false,
    }
}

fn is_trivially_true(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

/// Whether two schemas validate the same way judging by their text: equal up to
/// annotations (titles, descriptions, examples, …) and numeric spelling.
fn semantic_eq(a: &Value, b: &Value) -> bool {
    const SCHEMA_MAPS: &[&str] = &[
        "properties",
        "patternProperties",
        "$defs",
        "definitions",
        "dependentSchemas",
    ];
    const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
    const SCHEMAS: &[&str] = &[
        "items",
        "additionalItems",
        "additionalProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
        "contains",
        "not",
        "if",
        "then",
        "else",
    ];
    if is_trivially_true(a) && is_trivially_true(b) {
        return true;
    }
    let (Value::Object(x), Value::Object(y)) = (a, b) else {
        return json_eq(a, b);
    };
    let significant = |m: &Map<String, Value>| -> Vec<String> {
        m.keys()
            .filter(|k| !ANNOTATIONS.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let (kx, ky) = (significant(x), significant(y));
    if kx.len() != ky.len() || !kx.iter().all(|k| y.contains_key(k)) {
        return false;
    }
    kx.iter().all(|k| {
        let (v, w) = (&x[k], &y[k]);
        let keyword = k.as_str();
        match (v, w) {
            (Value::Object(m), Value::Object(n)) if SCHEMA_MAPS.contains(&keyword) => {
                m.len() == n.len()
                    && m.iter()
                        .all(|(name, s)| n.get(name).is_some_and(|t| semantic_eq(s, t)))
            }
            (Value::Array(m), Value::Array(n)) if SCHEMA_LISTS.contains(&keyword) => {
                m.len() == n.len() && m.iter().zip(n).all(|(s, t)| semantic_eq(s, t))
            }
            _ if SCHEMAS.contains(&keyword) => semantic_eq(v, w),
            _ => json_eq(v, w),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;

    fn no_refs(_: &str) -> Option<Value> {
        None
    }

    fn run(old: Value, new: Value) -> Vec<Change> {
        check(&old, &new, &no_refs)
    }

    /// Wraps property schemas in an object schema.
    fn obj(properties: Value) -> Value {
        json!({ "type": "object", "properties": properties })
    }

    /// Compares `{ "type": "object", "properties": { "x": old } }` with the same for `new`.
    fn prop(old: Value, new: Value) -> Vec<Change> {
        run(obj(json!({ "x": old })), obj(json!({ "x": new })))
    }

    #[track_caller]
    fn only(changes: &[Change]) -> &Change {
        assert_eq!(
            changes.len(),
            1,
            "expected exactly one change, got {changes:#?}"
        );
        &changes[0]
    }

    #[track_caller]
    fn assert_one(changes: &[Change], pointer: &str, kind: ChangeKind, breaking: bool) -> String {
        let c = only(changes);
        assert_eq!(c.pointer, pointer, "{c}");
        assert_eq!(c.kind, kind, "{c}");
        assert_eq!(c.breaking, breaking, "{c}");
        c.message.clone()
    }

    #[track_caller]
    fn assert_has(changes: &[Change], pointer: &str, kind: ChangeKind, breaking: bool) {
        assert!(
            changes
                .iter()
                .any(|c| c.pointer == pointer && c.kind == kind && c.breaking == breaking),
            "no {kind:?} (breaking: {breaking}) at {pointer} in {changes:#?}"
        );
    }

    fn permit_v1() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://civicbus.haliburton.ca/schemas/ca.haliburton.permitting.permit.issued/v1",
            "title": "Permit issued",
            "description": "A building permit was issued.",
            "type": "object",
            "required": ["PermitNum", "Status", "Fee"],
            "additionalProperties": false,
            "properties": {
                "PermitNum": { "title": "Permit number", "type": "string", "pattern": "^[0-9]{4}-[0-9]{4}$" },
                "Status": { "type": "string", "enum": ["Issued", "Active"] },
                "Fee": { "$ref": "https://civicbus.haliburton.ca/schemas/common/types/v1#/$defs/money" },
                "Arn": { "$ref": "https://civicbus.haliburton.ca/schemas/common/types/v1#/$defs/arn" },
                "Units": { "type": "integer", "minimum": 0, "maximum": 500 },
                "Contractors": { "type": "array", "items": { "$ref": "#/$defs/contractor" }, "maxItems": 10 },
                "Notes": { "type": ["string", "null"], "maxLength": 2000 }
            },
            "$defs": {
                "contractor": {
                    "type": "object",
                    "required": ["Name"],
                    "properties": {
                        "Name": { "type": "string", "minLength": 1 },
                        "License": { "type": "string" }
                    }
                }
            },
            "examples": [{ "PermitNum": "2026-0001", "Status": "Issued", "Fee": "150.00" }]
        })
    }

    // ----- identity -----------------------------------------------------------------

    #[test]
    fn identical_schemas_have_no_changes() {
        let resolver_calls = Cell::new(0);
        let resolve = |_: &str| {
            resolver_calls.set(resolver_calls.get() + 1);
            None
        };
        assert_eq!(check(&permit_v1(), &permit_v1(), &resolve), vec![]);
        assert_eq!(resolver_calls.get(), 0, "same $refs must not be resolved");
    }

    #[test]
    fn annotation_changes_are_not_reported() {
        let mut new = permit_v1();
        new["title"] = json!("Building permit issued");
        new["properties"]["PermitNum"]["description"] = json!("BLDS PermitNum");
        new["properties"]["Units"]["examples"] = json!([3]);
        new["$comment"] = json!("reworded");
        assert_eq!(run(permit_v1(), new), vec![]);
    }

    #[test]
    fn true_and_empty_schemas_are_equivalent() {
        assert_eq!(prop(json!(true), json!({})), vec![]);
        assert_eq!(
            prop(json!({ "description": "anything" }), json!(true)),
            vec![]
        );
    }

    // ----- properties and required --------------------------------------------------

    #[test]
    fn removed_property_is_breaking() {
        let mut new = permit_v1();
        if let Some(p) = new["properties"].as_object_mut() {
            p.remove("Units");
        }
        let msg = assert_one(
            &run(permit_v1(), new),
            "/properties/Units",
            ChangeKind::PropertyRemoved,
            true,
        );
        assert_eq!(msg, "property removed");
    }

    #[test]
    fn renamed_property_is_reported_as_removed_with_a_guess() {
        let old = obj(json!({ "PermitNum": { "type": "string", "pattern": "^P" } }));
        let new =
            obj(json!({ "PermitNumber": { "type": "string", "pattern": "^P", "title": "No." } }));
        let changes = run(old, new);
        assert_eq!(changes.len(), 2, "{changes:#?}");
        assert_eq!(
            changes[0].to_string(),
            "BREAKING /properties/PermitNum: property removed (renamed to PermitNumber?)"
        );
        assert_eq!(
            changes[1].to_string(),
            "note /properties/PermitNumber: property added (optional)"
        );
        assert!(is_breaking(&changes));
    }

    #[test]
    fn removed_property_with_a_different_new_property_is_not_called_a_rename() {
        let old = obj(json!({ "a": { "type": "string" } }));
        let new = obj(json!({ "b": { "type": "integer" } }));
        let changes = run(old, new);
        assert_has(&changes, "/properties/a", ChangeKind::PropertyRemoved, true);
        assert_eq!(changes[0].message, "property removed");
    }

    #[test]
    fn optional_property_added_is_a_note() {
        let old = obj(json!({ "a": { "type": "string" } }));
        let new = obj(json!({ "a": { "type": "string" }, "Notes": { "type": "string" } }));
        let changes = run(old, new);
        let c = only(&changes);
        assert_eq!(
            c.to_string(),
            "note /properties/Notes: property added (optional)"
        );
        assert_eq!(c.kind, ChangeKind::PropertyAdded);
        assert!(!is_breaking(&changes));
    }

    #[test]
    fn required_property_added_is_breaking() {
        let old = obj(json!({ "a": { "type": "string" } }));
        let mut new = obj(json!({ "a": { "type": "string" }, "b": { "type": "string" } }));
        new["required"] = json!(["b"]);
        let msg = assert_one(
            &run(old, new),
            "/properties/b",
            ChangeKind::RequiredAdded,
            true,
        );
        assert_eq!(msg, "property added (required)");
    }

    #[test]
    fn property_becoming_required_is_breaking() {
        let old = obj(json!({ "a": { "type": "string" } }));
        let mut new = old.clone();
        new["required"] = json!(["a"]);
        let msg = assert_one(
            &run(old, new),
            "/properties/a",
            ChangeKind::RequiredAdded,
            true,
        );
        assert_eq!(msg, "property became required");
    }

    #[test]
    fn property_no_longer_required_is_breaking_for_consumers() {
        let mut old = obj(json!({ "a": { "type": "string" } }));
        old["required"] = json!(["a"]);
        let new = obj(json!({ "a": { "type": "string" } }));
        assert_one(
            &run(old, new),
            "/properties/a",
            ChangeKind::RequiredRemoved,
            true,
        );
    }

    #[test]
    fn removed_required_property_is_reported_once() {
        let mut old = obj(json!({ "a": { "type": "string" }, "b": {} }));
        old["required"] = json!(["a"]);
        let new = obj(json!({ "b": {} }));
        assert_one(
            &run(old, new),
            "/properties/a",
            ChangeKind::PropertyRemoved,
            true,
        );
    }

    #[test]
    fn nested_properties_are_compared_with_their_path() {
        let old = obj(json!({
            "Address": obj(json!({ "Postal": { "type": "string", "maxLength": 7 } }))
        }));
        let new = obj(json!({
            "Address": obj(json!({ "Postal": { "type": "string", "maxLength": 6 } }))
        }));
        let changes = run(old, new);
        let msg = assert_one(
            &changes,
            "/properties/Address/properties/Postal",
            ChangeKind::BoundTightened,
            true,
        );
        assert_eq!(msg, "maxLength lowered from 7 to 6");
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        let old =
            obj(json!({ "a/b~c": { "type": "string" }, "cmis:objectId": { "type": "string" } }));
        let new = obj(json!({ "cmis:objectId": { "type": "string" } }));
        assert_one(
            &run(old, new),
            "/properties/a~1b~0c",
            ChangeKind::PropertyRemoved,
            true,
        );
    }

    // ----- type ---------------------------------------------------------------------

    #[test]
    fn type_narrowed_is_breaking() {
        let changes = prop(
            json!({ "type": ["string", "null"] }),
            json!({ "type": "string" }),
        );
        let msg = assert_one(&changes, "/properties/x", ChangeKind::TypeNarrowed, true);
        assert_eq!(msg, "type narrowed from [string, null] to string");

        let old = obj(json!({ "Fee": { "type": ["string", "number"] } }));
        let new = obj(json!({ "Fee": { "type": "string" } }));
        assert_eq!(
            only(&run(old, new)).to_string(),
            "BREAKING /properties/Fee: type narrowed from [string, number] to string"
        );
    }

    #[test]
    fn type_widened_is_a_note() {
        let changes = prop(
            json!({ "type": "string" }),
            json!({ "type": ["string", "null"] }),
        );
        let msg = assert_one(&changes, "/properties/x", ChangeKind::TypeWidened, false);
        assert_eq!(msg, "type widened from string to [string, null]");
    }

    #[test]
    fn number_to_integer_narrows_and_back_widens() {
        let changes = prop(json!({ "type": "number" }), json!({ "type": "integer" }));
        assert_one(&changes, "/properties/x", ChangeKind::TypeNarrowed, true);
        let changes = prop(json!({ "type": "integer" }), json!({ "type": "number" }));
        assert_one(&changes, "/properties/x", ChangeKind::TypeWidened, false);
        let changes = prop(
            json!({ "type": ["integer", "string"] }),
            json!({ "type": ["string", "number"] }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::TypeWidened, false);
    }

    #[test]
    fn unrelated_type_change_is_breaking() {
        let changes = prop(json!({ "type": "string" }), json!({ "type": "number" }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::TypeNarrowed, true);
        assert_eq!(msg, "type changed from string to number");
    }

    #[test]
    fn type_added_or_removed() {
        let changes = prop(json!({}), json!({ "type": "string" }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::TypeNarrowed, true);
        assert_eq!(msg, "type narrowed from any to string");
        let changes = prop(json!({ "type": "string" }), json!({}));
        assert_one(&changes, "/properties/x", ChangeKind::TypeWidened, false);
    }

    #[test]
    fn reordered_type_list_is_unchanged() {
        assert_eq!(
            prop(
                json!({ "type": ["null", "string"] }),
                json!({ "type": ["string", "null"] })
            ),
            vec![]
        );
    }

    // ----- enum and const -----------------------------------------------------------

    #[test]
    fn enum_value_removed_is_breaking() {
        let changes = prop(
            json!({ "enum": ["Issued", "Active", "Closed"] }),
            json!({ "enum": ["Issued", "Active"] }),
        );
        let msg = assert_one(
            &changes,
            "/properties/x",
            ChangeKind::EnumValueRemoved,
            true,
        );
        assert_eq!(msg, "enum value removed: \"Closed\"");
    }

    #[test]
    fn enum_value_added_is_a_note() {
        let changes = prop(
            json!({ "enum": ["Issued"] }),
            json!({ "enum": ["Issued", "Active", "Void"] }),
        );
        let msg = assert_one(&changes, "/properties/x", ChangeKind::EnumValueAdded, false);
        assert_eq!(msg, "enum values added: \"Active\", \"Void\"");
    }

    #[test]
    fn enum_values_swapped_reports_both() {
        let changes = prop(json!({ "enum": ["a", "b"] }), json!({ "enum": ["a", "c"] }));
        assert_eq!(changes.len(), 2);
        assert_has(
            &changes,
            "/properties/x",
            ChangeKind::EnumValueRemoved,
            true,
        );
        assert_has(&changes, "/properties/x", ChangeKind::EnumValueAdded, false);
    }

    #[test]
    fn enum_added_or_removed() {
        let changes = prop(
            json!({ "type": "string" }),
            json!({ "type": "string", "enum": ["a"] }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::EnumAdded, true);
        let changes = prop(
            json!({ "type": "string", "enum": ["a"] }),
            json!({ "type": "string" }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::EnumRemoved, false);
    }

    #[test]
    fn enum_numbers_compare_by_value() {
        assert_eq!(
            prop(json!({ "enum": [1, 2.5] }), json!({ "enum": [1.0, 2.5] })),
            vec![]
        );
        assert_eq!(prop(json!({ "const": 0 }), json!({ "const": 0.0 })), vec![]);
    }

    #[test]
    fn const_changed_added_removed() {
        let changes = prop(json!({ "const": "v1" }), json!({ "const": "v2" }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::ConstChanged, true);
        assert_eq!(msg, "const changed from \"v1\" to \"v2\"");
        let changes = prop(
            json!({ "type": "string" }),
            json!({ "type": "string", "const": "v2" }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::ConstChanged, true);
        let changes = prop(json!({ "const": "v1" }), json!({}));
        assert_one(&changes, "/properties/x", ChangeKind::ConstRemoved, false);
    }

    #[test]
    fn const_to_wider_enum_is_a_note_and_back_is_breaking() {
        let changes = prop(json!({ "const": "a" }), json!({ "enum": ["a", "b"] }));
        assert_one(&changes, "/properties/x", ChangeKind::EnumValueAdded, false);
        let changes = prop(json!({ "enum": ["a", "b"] }), json!({ "const": "a" }));
        assert_one(
            &changes,
            "/properties/x",
            ChangeKind::EnumValueRemoved,
            true,
        );
    }

    // ----- pattern, format ----------------------------------------------------------

    #[test]
    fn pattern_added_changed_removed() {
        let changes = prop(
            json!({ "type": "string" }),
            json!({ "type": "string", "pattern": "^[0-9]+$" }),
        );
        let msg = assert_one(&changes, "/properties/x", ChangeKind::PatternAdded, true);
        assert_eq!(msg, "pattern added: ^[0-9]+$");
        // Even a looser pattern counts: regex containment is not decided.
        let changes = prop(
            json!({ "pattern": "^[0-9]{4}$" }),
            json!({ "pattern": "^[0-9]{3,4}$" }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::PatternChanged, true);
        let changes = prop(json!({ "pattern": "^a" }), json!({}));
        assert_one(&changes, "/properties/x", ChangeKind::PatternRemoved, false);
        assert_eq!(
            prop(json!({ "pattern": "^a" }), json!({ "pattern": "^a" })),
            vec![]
        );
    }

    #[test]
    fn format_added_changed_removed() {
        let changes = prop(
            json!({ "type": "string" }),
            json!({ "type": "string", "format": "date-time" }),
        );
        let msg = assert_one(&changes, "/properties/x", ChangeKind::FormatAdded, true);
        assert_eq!(msg, "format added: date-time");
        let changes = prop(
            json!({ "format": "date-time" }),
            json!({ "format": "date" }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::FormatChanged, true);
        let changes = prop(json!({ "format": "email" }), json!({}));
        assert_one(&changes, "/properties/x", ChangeKind::FormatRemoved, false);
    }

    #[test]
    fn content_encoding_added_is_breaking() {
        let changes = prop(
            json!({ "type": "string" }),
            json!({ "type": "string", "contentEncoding": "base64" }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::ConstraintAdded, true);
    }

    // ----- bounds -------------------------------------------------------------------

    #[test]
    fn minimum_raised_is_breaking_lowered_is_a_note() {
        let changes = prop(json!({ "minimum": 0 }), json!({ "minimum": 1 }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        assert_eq!(msg, "minimum raised from 0 to 1");
        let changes = prop(json!({ "minimum": 1 }), json!({ "minimum": 0 }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        assert_eq!(msg, "minimum lowered from 1 to 0");
    }

    #[test]
    fn maximum_lowered_is_breaking_raised_is_a_note() {
        let changes = prop(json!({ "maximum": 500 }), json!({ "maximum": 99.5 }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        assert_eq!(msg, "maximum lowered from 500 to 99.5");
        let changes = prop(json!({ "maximum": 99 }), json!({ "maximum": 500 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
    }

    #[test]
    fn bound_added_is_breaking_removed_is_a_note() {
        let changes = prop(
            json!({ "type": "number" }),
            json!({ "type": "number", "minimum": 0 }),
        );
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        assert_eq!(msg, "minimum added: 0");
        let changes = prop(
            json!({ "type": "number", "maximum": 10 }),
            json!({ "type": "number" }),
        );
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        assert_eq!(msg, "maximum removed (was 10)");
    }

    #[test]
    fn exclusive_bounds_combine_with_inclusive_ones() {
        let changes = prop(json!({ "minimum": 0 }), json!({ "exclusiveMinimum": 0 }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        assert_eq!(
            msg,
            "lower bound tightened from minimum 0 to exclusiveMinimum 0"
        );
        let changes = prop(json!({ "exclusiveMinimum": 0 }), json!({ "minimum": 0 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        let changes = prop(
            json!({ "exclusiveMinimum": 0 }),
            json!({ "exclusiveMinimum": 5 }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "maximum": 10 }), json!({ "exclusiveMaximum": 10 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "exclusiveMaximum": 10 }), json!({ "maximum": 11 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        // The tighter of the two keywords is the effective bound.
        assert_eq!(
            prop(
                json!({ "minimum": 5, "exclusiveMinimum": 0 }),
                json!({ "minimum": 5 })
            ),
            vec![]
        );
    }

    #[test]
    fn string_length_bounds() {
        let changes = prop(json!({ "minLength": 1 }), json!({ "minLength": 3 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "minLength": 3 }), json!({ "minLength": 1 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        let changes = prop(json!({ "maxLength": 100 }), json!({ "maxLength": 50 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "maxLength": 50 }), json!({ "maxLength": 100 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        let changes = prop(json!({}), json!({ "maxLength": 50 }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        assert_eq!(msg, "maxLength added: 50");
        // minLength 0 is the default: adding it changes nothing.
        assert_eq!(prop(json!({}), json!({ "minLength": 0 })), vec![]);
    }

    #[test]
    fn item_and_property_count_bounds() {
        let changes = prop(json!({ "minItems": 0 }), json!({ "minItems": 1 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "maxItems": 10 }), json!({ "maxItems": 5 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "maxItems": 5 }), json!({}));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        let changes = prop(json!({ "minItems": 2 }), json!({ "minItems": 1 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        let changes = prop(json!({ "maxProperties": 5 }), json!({ "maxProperties": 4 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "minProperties": 2 }), json!({}));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
    }

    #[test]
    fn multiple_of() {
        let changes = prop(json!({ "multipleOf": 0.01 }), json!({ "multipleOf": 0.05 }));
        let msg = assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        assert_eq!(msg, "multipleOf changed from 0.01 to 0.05");
        let changes = prop(json!({ "multipleOf": 0.02 }), json!({ "multipleOf": 0.01 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        let changes = prop(json!({ "multipleOf": 2 }), json!({ "multipleOf": 3 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({}), json!({ "multipleOf": 5 }));
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
        let changes = prop(json!({ "multipleOf": 5 }), json!({}));
        assert_one(&changes, "/properties/x", ChangeKind::BoundLoosened, false);
        assert_eq!(
            prop(json!({ "multipleOf": 5 }), json!({ "multipleOf": 5.0 })),
            vec![]
        );
    }

    #[test]
    fn unique_items() {
        let changes = prop(
            json!({ "type": "array" }),
            json!({ "type": "array", "uniqueItems": true }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::ConstraintAdded, true);
        let changes = prop(
            json!({ "uniqueItems": true }),
            json!({ "uniqueItems": false }),
        );
        assert_one(
            &changes,
            "/properties/x",
            ChangeKind::ConstraintRemoved,
            false,
        );
    }

    // ----- additionalProperties -----------------------------------------------------

    #[test]
    fn additional_properties_closed_is_breaking() {
        let old = obj(json!({ "a": {} }));
        let mut new = old.clone();
        new["additionalProperties"] = json!(false);
        let msg = assert_one(
            &run(old.clone(), new.clone()),
            "/additionalProperties",
            ChangeKind::AdditionalPropertiesClosed,
            true,
        );
        assert!(msg.contains("false"), "{msg}");

        let mut explicit_true = old;
        explicit_true["additionalProperties"] = json!(true);
        assert_one(
            &run(explicit_true.clone(), new.clone()),
            "/additionalProperties",
            ChangeKind::AdditionalPropertiesClosed,
            true,
        );
        assert_one(
            &run(new, explicit_true),
            "/additionalProperties",
            ChangeKind::AdditionalPropertiesOpened,
            false,
        );
    }

    #[test]
    fn additional_properties_schema_is_compared() {
        let old =
            json!({ "type": "object", "additionalProperties": { "type": ["string", "number"] } });
        let new = json!({ "type": "object", "additionalProperties": { "type": "string" } });
        assert_one(
            &run(old.clone(), new.clone()),
            "/additionalProperties",
            ChangeKind::TypeNarrowed,
            true,
        );
        assert_one(
            &run(new, old),
            "/additionalProperties",
            ChangeKind::TypeWidened,
            false,
        );
        // From unconstrained to constrained.
        let old = json!({ "type": "object" });
        let new = json!({ "type": "object", "additionalProperties": { "type": "string" } });
        assert_one(
            &run(old, new),
            "/additionalProperties",
            ChangeKind::TypeNarrowed,
            true,
        );
    }

    #[test]
    fn unevaluated_properties_closed_is_breaking() {
        let old = json!({ "type": "object" });
        let new = json!({ "type": "object", "unevaluatedProperties": false });
        assert_one(
            &run(old, new),
            "/unevaluatedProperties",
            ChangeKind::AdditionalPropertiesClosed,
            true,
        );
    }

    #[test]
    fn pattern_properties() {
        let old = json!({ "patternProperties": { "^x-": { "type": "string" } } });
        let new = json!({ "patternProperties": { "^x-": { "type": "string", "maxLength": 5 } } });
        assert_one(
            &run(old, new),
            "/patternProperties/^x-",
            ChangeKind::BoundTightened,
            true,
        );
        // A new pattern constrains properties that additionalProperties allowed.
        let old = json!({ "type": "object" });
        let new = json!({ "type": "object", "patternProperties": { "^x-": { "type": "string" } } });
        assert_one(
            &run(old, new),
            "/patternProperties/^x-",
            ChangeKind::TypeNarrowed,
            true,
        );
        // ...and loosens when additionalProperties was false.
        let old = json!({ "type": "object", "additionalProperties": false });
        let new = json!({ "type": "object", "additionalProperties": false, "patternProperties": { "^x-": {} } });
        assert_one(
            &run(old, new),
            "/patternProperties/^x-",
            ChangeKind::ConstraintRemoved,
            false,
        );
    }

    #[test]
    fn property_names_and_dependent_required() {
        let old = json!({ "type": "object" });
        let new = json!({ "type": "object", "propertyNames": { "pattern": "^[a-z]+$" } });
        assert_one(
            &run(old, new),
            "/propertyNames",
            ChangeKind::PatternAdded,
            true,
        );

        let old = json!({ "dependentRequired": { "a": ["b"] } });
        let new = json!({ "dependentRequired": { "a": ["b", "c"] } });
        let msg = assert_one(
            &run(old.clone(), new.clone()),
            "/dependentRequired/a",
            ChangeKind::RequiredAdded,
            true,
        );
        assert_eq!(msg, "c now required when a is present");
        assert_one(
            &run(new, old),
            "/dependentRequired/a",
            ChangeKind::RequiredRemoved,
            true,
        );
    }

    #[test]
    fn dependent_schemas_are_compared_by_key() {
        let old = json!({ "dependentSchemas": { "a": { "required": ["b"] } } });
        let new = json!({ "dependentSchemas": { "a": { "required": ["b", "c"] } } });
        assert_one(
            &run(old, new),
            "/dependentSchemas/a/properties/c",
            ChangeKind::RequiredAdded,
            true,
        );
    }

    // ----- arrays -------------------------------------------------------------------

    #[test]
    fn items_are_compared() {
        let old = obj(
            json!({ "Lines": { "type": "array", "items": obj(json!({ "Amount": { "type": ["string", "number"] } })) } }),
        );
        let new = obj(
            json!({ "Lines": { "type": "array", "items": obj(json!({ "Amount": { "type": "string" } })) } }),
        );
        assert_one(
            &run(old, new),
            "/properties/Lines/items/properties/Amount",
            ChangeKind::TypeNarrowed,
            true,
        );
    }

    #[test]
    fn prefix_items_by_position() {
        let old =
            json!({ "type": "array", "prefixItems": [{ "type": "number" }, { "type": "string" }] });
        let new = json!({ "type": "array", "prefixItems": [{ "type": "number" }, { "type": "string", "maxLength": 3 }] });
        assert_one(
            &run(old, new),
            "/prefixItems/1",
            ChangeKind::BoundTightened,
            true,
        );

        // A new position constrains items that were free.
        let old = json!({ "type": "array", "prefixItems": [{ "type": "number" }] });
        let new =
            json!({ "type": "array", "prefixItems": [{ "type": "number" }, { "type": "string" }] });
        assert_one(
            &run(old.clone(), new.clone()),
            "/prefixItems/1",
            ChangeKind::TypeNarrowed,
            true,
        );
        // Dropping it frees them again.
        assert_one(
            &run(new, old),
            "/prefixItems/1",
            ChangeKind::TypeWidened,
            false,
        );

        // items: false closes the tuple.
        let old = json!({ "prefixItems": [{}] });
        let new = json!({ "prefixItems": [{}], "items": false });
        assert_one(&run(old, new), "/items", ChangeKind::ConstraintAdded, true);
    }

    #[test]
    fn contains() {
        let old = json!({ "type": "array" });
        let new = json!({ "type": "array", "contains": { "const": "x" } });
        assert_one(
            &run(old.clone(), new.clone()),
            "/contains",
            ChangeKind::ConstraintAdded,
            true,
        );
        assert_one(
            &run(new, old),
            "/contains",
            ChangeKind::ConstraintRemoved,
            false,
        );
        let old = json!({ "contains": { "type": "string" } });
        let new = json!({ "contains": { "type": "string", "minLength": 2 } });
        assert_one(
            &run(old, new),
            "/contains",
            ChangeKind::BoundTightened,
            true,
        );
    }

    // ----- references -----------------------------------------------------------------

    #[test]
    fn same_local_ref_is_compared_under_defs_once() {
        let mut new = permit_v1();
        new["$defs"]["contractor"]["properties"]["Name"]["minLength"] = json!(2);
        let msg = assert_one(
            &run(permit_v1(), new),
            "/$defs/contractor/properties/Name",
            ChangeKind::BoundTightened,
            true,
        );
        assert_eq!(msg, "minLength raised from 1 to 2");
    }

    #[test]
    fn changed_local_ref_is_followed() {
        let old = json!({
            "type": "object",
            "properties": { "when": { "$ref": "#/$defs/dateTime" } },
            "$defs": { "dateTime": { "type": "string" }, "date": { "type": "string", "pattern": "^[0-9-]{10}$" } }
        });
        let mut new = old.clone();
        new["properties"]["when"]["$ref"] = json!("#/$defs/date");
        assert_one(
            &run(old, new),
            "/properties/when",
            ChangeKind::PatternAdded,
            true,
        );
    }

    #[test]
    fn ref_and_inline_are_equivalent() {
        let inline = obj(json!({ "a": { "type": "string", "maxLength": 5 } }));
        let mut with_ref = obj(json!({ "a": { "$ref": "#/$defs/short", "description": "A" } }));
        with_ref["$defs"] = json!({ "short": { "type": "string", "maxLength": 5 } });
        let changes = run(inline.clone(), with_ref.clone());
        assert_one(&changes, "/$defs/short", ChangeKind::DefinitionAdded, false);
        let changes = run(with_ref, inline);
        assert_one(
            &changes,
            "/$defs/short",
            ChangeKind::DefinitionRemoved,
            true,
        );
    }

    #[test]
    fn ref_siblings_are_compared() {
        let money = "https://civicbus.haliburton.ca/schemas/common/types/v1#/$defs/money";
        let changes = prop(
            json!({ "$ref": money }),
            json!({ "$ref": money, "maxLength": 12 }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::BoundTightened, true);
    }

    #[test]
    fn anchor_and_percent_encoded_refs() {
        let old = json!({
            "properties": { "a": { "$ref": "#short" }, "b": { "$ref": "#/$defs/with%20space" } },
            "$defs": {
                "s": { "$anchor": "short", "type": "string", "maxLength": 5 },
                "with space": { "type": "integer" }
            }
        });
        let new = json!({
            "properties": { "a": { "type": "string", "maxLength": 4 }, "b": { "type": "number" } },
            "$defs": {
                "s": { "$anchor": "short", "type": "string", "maxLength": 5 },
                "with space": { "type": "integer" }
            }
        });
        let changes = run(old, new);
        assert_eq!(changes.len(), 2, "{changes:#?}");
        assert_has(&changes, "/properties/a", ChangeKind::BoundTightened, true);
        assert_has(&changes, "/properties/b", ChangeKind::TypeWidened, false);
    }

    fn common_types(version: u32, money_pattern: &str) -> Value {
        json!({
            "$id": format!("https://civicbus.haliburton.ca/schemas/common/types/v{version}"),
            "$defs": {
                "money": { "type": "string", "pattern": money_pattern },
                "amount": { "$ref": "#/$defs/money" },
                "arn": { "type": "string", "pattern": "^[0-9]{19}$" }
            }
        })
    }

    fn common_resolver(uri: &str) -> Option<Value> {
        match uri {
            "https://civicbus.haliburton.ca/schemas/common/types/v1" => {
                Some(common_types(1, "^-?[0-9]+(\\.[0-9]{1,2})?$"))
            }
            "https://civicbus.haliburton.ca/schemas/common/types/v2" => {
                Some(common_types(2, "^-?[0-9]+\\.[0-9]{2}$"))
            }
            _ => None,
        }
    }

    #[test]
    fn external_ref_replacing_inline_schema_is_resolved() {
        let old = obj(json!({ "Fee": { "type": "string" } }));
        let new = obj(
            json!({ "Fee": { "$ref": "https://civicbus.haliburton.ca/schemas/common/types/v1#/$defs/money" } }),
        );
        let changes = check(&old, &new, &common_resolver);
        let msg = assert_one(&changes, "/properties/Fee", ChangeKind::PatternAdded, true);
        assert!(msg.starts_with("pattern added: ^-?"), "{msg}");
        // Back to inline: a note.
        let changes = check(&new, &old, &common_resolver);
        assert_one(
            &changes,
            "/properties/Fee",
            ChangeKind::PatternRemoved,
            false,
        );
    }

    #[test]
    fn external_refs_to_different_versions_are_compared() {
        let v1 = "https://civicbus.haliburton.ca/schemas/common/types/v1#/$defs/money";
        // Through a local ref inside the external document, which must resolve there.
        let v2 = "https://civicbus.haliburton.ca/schemas/common/types/v2#/$defs/amount";
        let calls = Cell::new(0);
        let resolve = |uri: &str| {
            calls.set(calls.get() + 1);
            common_resolver(uri)
        };
        let old = obj(json!({ "Fee": { "$ref": v1 }, "Tax": { "$ref": v1 } }));
        let new = obj(json!({ "Fee": { "$ref": v2 }, "Tax": { "$ref": v2 } }));
        let changes = check(&old, &new, &resolve);
        assert_eq!(changes.len(), 2, "{changes:#?}");
        assert_has(
            &changes,
            "/properties/Fee",
            ChangeKind::PatternChanged,
            true,
        );
        assert_has(
            &changes,
            "/properties/Tax",
            ChangeKind::PatternChanged,
            true,
        );
        assert_eq!(calls.get(), 2, "each document is resolved once");
    }

    #[test]
    fn relative_refs_resolve_against_id() {
        let old = json!({
            "$id": "https://civicbus.haliburton.ca/schemas/ca.haliburton.finance.fee.paid/v1",
            "type": "object",
            "properties": { "Fee": { "type": "string" } }
        });
        let mut new = old.clone();
        new["properties"]["Fee"] = json!({ "$ref": "../common/types/v1#/$defs/money" });
        let changes = check(&old, &new, &common_resolver);
        assert_one(&changes, "/properties/Fee", ChangeKind::PatternAdded, true);
        new["properties"]["Fee"] = json!({ "$ref": "/schemas/common/types/v1#/$defs/money" });
        let changes = check(&old, &new, &common_resolver);
        assert_one(&changes, "/properties/Fee", ChangeKind::PatternAdded, true);
    }

    #[test]
    fn ref_to_own_id_is_local() {
        let id = "https://civicbus.haliburton.ca/schemas/x/v1";
        let old = json!({
            "$id": id,
            "properties": { "a": { "$ref": format!("{id}#/$defs/t") } },
            "$defs": { "t": { "type": "string" } }
        });
        let new = json!({
            "$id": "https://civicbus.haliburton.ca/schemas/x/v2",
            "properties": { "a": { "type": "integer" } },
            "$defs": { "t": { "type": "string" } }
        });
        let resolve = |uri: &str| -> Option<Value> { panic!("resolver called for {uri}") };
        assert_one(
            &check(&old, &new, &resolve),
            "/properties/a",
            ChangeKind::TypeNarrowed,
            true,
        );
    }

    #[test]
    fn unresolvable_ref_is_breaking() {
        let old = obj(json!({ "Fee": { "type": "string" } }));
        let new = obj(json!({ "Fee": { "$ref": "https://example.org/unknown#/$defs/x" } }));
        let msg = assert_one(
            &run(old, new),
            "/properties/Fee",
            ChangeKind::Unchecked,
            true,
        );
        assert!(
            msg.contains("https://example.org/unknown#/$defs/x"),
            "{msg}"
        );
        // A local pointer that does not exist.
        let old = obj(json!({ "a": { "$ref": "#/$defs/missing" } }));
        let new = obj(json!({ "a": {} }));
        assert_one(&run(old, new), "/properties/a", ChangeKind::Unchecked, true);
    }

    #[test]
    fn same_external_ref_is_not_resolved() {
        let money = "https://civicbus.haliburton.ca/schemas/common/types/v1#/$defs/money";
        let schema = obj(json!({ "Fee": { "$ref": money } }));
        // The resolver knows nothing, yet there is nothing to report.
        assert_eq!(run(schema.clone(), schema), vec![]);
    }

    // ----- cycles -------------------------------------------------------------------

    fn tree(leaf: Value) -> Value {
        json!({
            "$ref": "#/$defs/node",
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "value": leaf,
                        "children": { "type": "array", "items": { "$ref": "#/$defs/node" } },
                        "parent": { "$ref": "#" }
                    }
                }
            }
        })
    }

    #[test]
    fn recursive_schemas_terminate() {
        assert_eq!(
            run(
                tree(json!({ "type": "string" })),
                tree(json!({ "type": "string" }))
            ),
            vec![]
        );
        let changes = run(
            tree(json!({ "type": ["string", "null"] })),
            tree(json!({ "type": "string" })),
        );
        assert_one(
            &changes,
            "/$defs/node/properties/value",
            ChangeKind::TypeNarrowed,
            true,
        );
    }

    #[test]
    fn differently_named_recursive_defs_terminate() {
        let old = json!({
            "$ref": "#/$defs/a",
            "$defs": { "a": { "type": "object", "properties": { "next": { "$ref": "#/$defs/a" }, "v": { "type": "number" } } } }
        });
        let new = json!({
            "$ref": "#/$defs/b",
            "$defs": { "b": { "type": "object", "properties": { "next": { "$ref": "#/$defs/b" }, "v": { "type": "integer" } } } }
        });
        let changes = run(old, new);
        // Compared at the root (through the refs) and nowhere else for `v`.
        assert_has(&changes, "/properties/v", ChangeKind::TypeNarrowed, true);
        assert_has(&changes, "/$defs/a", ChangeKind::DefinitionRemoved, true);
        assert_has(&changes, "/$defs/b", ChangeKind::DefinitionAdded, false);
        assert_eq!(changes.len(), 3, "{changes:#?}");
    }

    #[test]
    fn recursive_schema_against_inline_one_terminates() {
        let old = json!({
            "$defs": { "a": { "type": "object", "properties": { "next": { "$ref": "#/$defs/a" } } } },
            "$ref": "#/$defs/a"
        });
        let new = json!({
            "$defs": { "a": { "type": "object", "properties": { "next": { "$ref": "#/$defs/a" } } } },
            "type": "object",
            "properties": { "next": { "type": "object", "properties": { "next": { "type": "string" } } } }
        });
        let changes = run(old, new);
        assert_has(
            &changes,
            "/properties/next/properties/next",
            ChangeKind::TypeNarrowed,
            true,
        );
        assert!(
            changes
                .iter()
                .all(|c| c.pointer.starts_with("/properties/next/properties/next")),
            "{changes:#?}"
        );
    }

    #[test]
    fn ref_loops_terminate() {
        let old = json!({
            "properties": { "a": { "$ref": "#/$defs/x" } },
            "$defs": { "x": { "$ref": "#/$defs/y" }, "y": { "$ref": "#/$defs/x" } }
        });
        let new = json!({
            "properties": { "a": { "$ref": "#/$defs/y" } },
            "$defs": { "x": { "$ref": "#/$defs/y" }, "y": { "$ref": "#/$defs/x" } }
        });
        assert_eq!(run(old, new), vec![]);
        let selfref = json!({ "$ref": "#" });
        assert_eq!(
            run(selfref.clone(), json!({ "$ref": "#", "type": "string" })).len(),
            1
        );
        assert_eq!(
            run(json!({ "properties": { "a": selfref.clone() } }), json!({})).len(),
            1
        );
    }

    #[test]
    fn mutually_recursive_external_documents_terminate() {
        // a -> b -> a, and a2 -> b2 -> a2 with one difference in b2.
        let doc = |name: &str, other: &str, n_type: &str| {
            json!({
                "$id": format!("https://example.org/{name}"),
                "type": "object",
                "properties": { "next": { "$ref": other }, "n": { "type": n_type } }
            })
        };
        let resolve = |uri: &str| match uri {
            "https://example.org/a" => Some(doc("a", "b", "number")),
            "https://example.org/b" => Some(doc("b", "https://example.org/a", "number")),
            "https://example.org/a2" => Some(doc("a2", "b2", "number")),
            "https://example.org/b2" => Some(doc("b2", "a2", "integer")),
            _ => None,
        };
        let old = obj(json!({ "x": { "$ref": "https://example.org/a" } }));
        let new = obj(json!({ "x": { "$ref": "https://example.org/a2" } }));
        let changes = check(&old, &new, &resolve);
        assert_one(
            &changes,
            "/properties/x/properties/next/properties/n",
            ChangeKind::TypeNarrowed,
            true,
        );
    }

    // ----- combinators and conditionals ---------------------------------------------

    #[test]
    fn any_of_branches() {
        let old = json!({ "anyOf": [{ "type": "string" }, { "type": "null" }] });
        let new = json!({ "anyOf": [{ "type": "string" }] });
        assert_one(
            &run(old.clone(), new.clone()),
            "/anyOf/1",
            ChangeKind::ConstraintRemoved,
            true,
        );
        assert_one(
            &run(new, old.clone()),
            "/anyOf/1",
            ChangeKind::ConstraintAdded,
            false,
        );
        // Reordering is not a change.
        let reordered =
            json!({ "anyOf": [{ "type": "null" }, { "type": "string", "title": "S" }] });
        assert_eq!(run(old.clone(), reordered), vec![]);
        // A changed branch is compared.
        let tightened =
            json!({ "anyOf": [{ "type": "string", "maxLength": 3 }, { "type": "null" }] });
        assert_one(
            &run(old, tightened),
            "/anyOf/0",
            ChangeKind::BoundTightened,
            true,
        );
    }

    #[test]
    fn one_of_added_or_removed() {
        let old = json!({ "type": "object" });
        let new =
            json!({ "type": "object", "oneOf": [{ "required": ["a"] }, { "required": ["b"] }] });
        assert_one(
            &run(old.clone(), new.clone()),
            "/oneOf",
            ChangeKind::ConstraintAdded,
            true,
        );
        assert_one(
            &run(new, old),
            "/oneOf",
            ChangeKind::ConstraintRemoved,
            false,
        );
    }

    #[test]
    fn all_of_branches_report_what_they_constrain() {
        let old = json!({ "allOf": [{ "type": "object" }] });
        let new = json!({ "allOf": [{ "type": "object" }, { "required": ["a"] }] });
        assert_one(
            &run(old.clone(), new.clone()),
            "/allOf/1/properties/a",
            ChangeKind::RequiredAdded,
            true,
        );
        assert_one(
            &run(new, old),
            "/allOf/1/properties/a",
            ChangeKind::RequiredRemoved,
            true,
        );
        let old = json!({ "allOf": [{ "type": "object" }, { "maxProperties": 3 }] });
        let new = json!({ "allOf": [{ "type": "object" }] });
        assert_one(&run(old, new), "/allOf/1", ChangeKind::BoundLoosened, false);
        // An annotation-only branch changes nothing.
        let old = json!({ "type": "string" });
        let new = json!({ "type": "string", "allOf": [{ "description": "x" }] });
        assert_eq!(run(old, new), vec![]);
    }

    #[test]
    fn conditionals() {
        let base = json!({ "type": "object", "properties": { "kind": {}, "n": {} } });
        let mut old = base.clone();
        old["if"] = json!({ "properties": { "kind": { "const": "fee" } } });
        old["then"] = json!({ "required": ["n"] });
        assert_one(
            &run(base.clone(), old.clone()),
            "/if",
            ChangeKind::ConstraintAdded,
            true,
        );
        assert_one(
            &run(old.clone(), base),
            "/if",
            ChangeKind::ConstraintRemoved,
            false,
        );

        let mut typed = old.clone();
        typed["then"]["properties"] = json!({ "n": { "type": "number" } });
        let mut tightened = typed.clone();
        tightened["then"]["properties"]["n"]["type"] = json!("integer");
        assert_one(
            &run(typed, tightened),
            "/then/properties/n",
            ChangeKind::TypeNarrowed,
            true,
        );
        // Defining a property the old subschema already required is a note.
        let mut defined = old.clone();
        defined["then"]["properties"] = json!({ "n": { "type": "number" } });
        assert_one(
            &run(old.clone(), defined),
            "/then/properties/n",
            ChangeKind::PropertyAdded,
            false,
        );

        let mut other_if = old.clone();
        other_if["if"]["properties"]["kind"]["const"] = json!("tax");
        assert_one(
            &run(old.clone(), other_if),
            "/if",
            ChangeKind::ConstraintChanged,
            true,
        );

        let mut with_else = old.clone();
        with_else["else"] = json!({ "required": ["kind"] });
        assert_one(
            &run(old, with_else),
            "/else/properties/kind",
            ChangeKind::RequiredAdded,
            true,
        );
    }

    #[test]
    fn not_keyword() {
        let old = json!({ "type": "string" });
        let new = json!({ "type": "string", "not": { "const": "" } });
        assert_one(
            &run(old.clone(), new.clone()),
            "/not",
            ChangeKind::ConstraintAdded,
            true,
        );
        assert_one(
            &run(new.clone(), old),
            "/not",
            ChangeKind::ConstraintRemoved,
            false,
        );
        let changed = json!({ "type": "string", "not": { "const": "-" } });
        assert_one(
            &run(new, changed),
            "/not",
            ChangeKind::ConstraintChanged,
            true,
        );
    }

    // ----- boolean schemas, definitions, deprecation ----------------------------------

    #[test]
    fn boolean_schemas() {
        let changes = prop(json!(true), json!(false));
        assert_one(&changes, "/properties/x", ChangeKind::ConstraintAdded, true);
        let changes = prop(json!(false), json!({ "type": "string" }));
        assert_one(
            &changes,
            "/properties/x",
            ChangeKind::ConstraintRemoved,
            false,
        );
        assert_eq!(prop(json!(false), json!(false)), vec![]);
    }

    #[test]
    fn definitions_removed_and_added() {
        let old = json!({ "$defs": { "money": { "type": "string" } } });
        let new =
            json!({ "$defs": { "money": { "type": "string" }, "currency": { "type": "string" } } });
        assert_one(
            &run(old.clone(), new.clone()),
            "/$defs/currency",
            ChangeKind::DefinitionAdded,
            false,
        );
        assert_one(
            &run(new, old),
            "/$defs/currency",
            ChangeKind::DefinitionRemoved,
            true,
        );
        let old = json!({ "definitions": { "a": { "type": "string" } } });
        let new = json!({ "definitions": { "a": { "type": "integer" } } });
        assert_one(
            &run(old, new),
            "/definitions/a",
            ChangeKind::TypeNarrowed,
            true,
        );
    }

    #[test]
    fn deprecation_is_a_note() {
        let changes = prop(
            json!({ "type": "string" }),
            json!({ "type": "string", "deprecated": true }),
        );
        assert_one(&changes, "/properties/x", ChangeKind::Deprecated, false);
    }

    // ----- the whole picture ----------------------------------------------------------

    #[test]
    fn realistic_major_change() {
        let mut new = permit_v1();
        new["properties"]["Status"]["enum"] = json!(["Issued", "Active", "Expired"]);
        new["properties"]["Notes"]["type"] = json!("string");
        new["properties"]["Units"]["maximum"] = json!(1000);
        new["properties"]["IssuedDate"] =
            json!({ "$ref": "https://civicbus.haliburton.ca/schemas/common/types/v1#/$defs/date" });
        new["required"] = json!(["PermitNum", "Status", "Fee", "IssuedDate"]);
        let changes = run(permit_v1(), new);
        let mut lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        lines.sort();
        assert_eq!(
            lines,
            vec![
                "BREAKING /properties/IssuedDate: property added (required)",
                "BREAKING /properties/Notes: type narrowed from [string, null] to string",
                "note /properties/Status: enum value added: \"Expired\"",
                "note /properties/Units: maximum raised from 500 to 1000",
            ]
        );
        assert!(is_breaking(&changes));
    }

    #[test]
    fn is_breaking_and_display() {
        assert!(!is_breaking(&[]));
        let note = Change {
            pointer: String::new(),
            kind: ChangeKind::TypeWidened,
            breaking: false,
            message: "type widened from string to [string, null]".into(),
        };
        assert_eq!(
            note.to_string(),
            "note (root): type widened from string to [string, null]"
        );
        assert!(!is_breaking(std::slice::from_ref(&note)));
        let breaking = Change {
            breaking: true,
            ..note.clone()
        };
        assert!(is_breaking(&[note, breaking]));
    }

    #[test]
    fn uri_resolution() {
        let base = Some("https://h.ca/schemas/a/b/v1");
        assert_eq!(resolve_uri(base, "c"), "https://h.ca/schemas/a/b/c");
        assert_eq!(resolve_uri(base, "../x/v2"), "https://h.ca/schemas/a/x/v2");
        assert_eq!(resolve_uri(base, "./y"), "https://h.ca/schemas/a/b/y");
        assert_eq!(resolve_uri(base, "/root"), "https://h.ca/root");
        assert_eq!(resolve_uri(base, "//other.ca/p"), "https://other.ca/p");
        assert_eq!(resolve_uri(base, "urn:x:y"), "urn:x:y");
        assert_eq!(resolve_uri(None, "rel"), "rel");
    }
}
