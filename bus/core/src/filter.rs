//! CloudEvents Subscriptions API filter dialects: `exact`, `prefix`, `suffix`, `all`, `any`, `not`.
//!
//! A subscription holds an array of filters that must all match (AND). Each of `exact`,
//! `prefix` and `suffix` names one or more attributes (core or extension); every named
//! attribute must be present and match. Matching is case-sensitive, as the spec requires.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::envelope::CloudEvent;

/// One filter expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Filter {
    /// Every named attribute equals the value.
    Exact(BTreeMap<String, String>),
    /// Every named attribute starts with the value.
    Prefix(BTreeMap<String, String>),
    /// Every named attribute ends with the value.
    Suffix(BTreeMap<String, String>),
    /// All nested filters match (an empty list matches).
    All(Vec<Filter>),
    /// At least one nested filter matches (an empty list matches nothing).
    Any(Vec<Filter>),
    /// The nested filter does not match.
    Not(Box<Filter>),
}

impl Filter {
    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &CloudEvent) -> bool {
        match self {
            Filter::Exact(m) => m
                .iter()
                .all(|(k, v)| event.attribute_str(k).is_some_and(|a| a == v.as_str())),
            Filter::Prefix(m) => m.iter().all(|(k, v)| {
                event
                    .attribute_str(k)
                    .is_some_and(|a| a.starts_with(v.as_str()))
            }),
            Filter::Suffix(m) => m.iter().all(|(k, v)| {
                event
                    .attribute_str(k)
                    .is_some_and(|a| a.ends_with(v.as_str()))
            }),
            Filter::All(fs) => fs.iter().all(|f| f.matches(event)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
        }
    }

    /// Problems with this filter, each with its path below `path` (e.g. `filters[0].prefix`).
    pub fn problems(&self, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        let check_map = |name: &str, m: &BTreeMap<String, String>, out: &mut Vec<String>| {
            let here = format!("{path}.{name}");
            if m.is_empty() {
                out.push(format!(
                    "{here}: names no attribute; write e.g. {{ {name} = {{ type = \"ca.haliburton.\" }} }}"
                ));
            }
            for (attr, value) in m {
                if attr.is_empty()
                    || !attr
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                {
                    out.push(format!(
                        "{here}.{attr}: not a CloudEvents attribute name (lower-case letters and digits only)"
                    ));
                }
                if name != "exact" && value.is_empty() {
                    out.push(format!(
                        "{here}.{attr}: an empty {name} matches every event that has the attribute; remove the filter or give a value"
                    ));
                }
            }
        };
        match self {
            Filter::Exact(m) => check_map("exact", m, &mut out),
            Filter::Prefix(m) => check_map("prefix", m, &mut out),
            Filter::Suffix(m) => check_map("suffix", m, &mut out),
            Filter::All(fs) => {
                for (i, f) in fs.iter().enumerate() {
                    out.extend(f.problems(&format!("{path}.all[{i}]")));
                }
            }
            Filter::Any(fs) => {
                if fs.is_empty() {
                    out.push(format!(
                        "{path}.any: an empty `any` never matches; add filters or remove it"
                    ));
                }
                for (i, f) in fs.iter().enumerate() {
                    out.extend(f.problems(&format!("{path}.any[{i}]")));
                }
            }
            Filter::Not(f) => out.extend(f.problems(&format!("{path}.not"))),
        }
        out
    }
}

impl Filter {
    /// Whether an event of type `ty` passes this filter, judging by `type` alone:
    /// `Some(true)` or `Some(false)` when the type decides, `None` when other attributes
    /// do.
    pub fn on_type(&self, ty: &str) -> Option<bool> {
        let leaf = |m: &BTreeMap<String, String>, test: &dyn Fn(&str) -> bool| match m.get("type") {
            Some(v) if !test(v) => Some(false),
            Some(_) if m.len() == 1 => Some(true),
            _ => None,
        };
        match self {
            Filter::Exact(m) => leaf(m, &|v| ty == v),
            Filter::Prefix(m) => leaf(m, &|v| ty.starts_with(v)),
            Filter::Suffix(m) => leaf(m, &|v| ty.ends_with(v)),
            Filter::All(fs) => {
                let results: Vec<Option<bool>> = fs.iter().map(|f| f.on_type(ty)).collect();
                if results.contains(&Some(false)) {
                    Some(false)
                } else if results.iter().all(|r| *r == Some(true)) {
                    Some(true)
                } else {
                    None
                }
            }
            Filter::Any(fs) => {
                let results: Vec<Option<bool>> = fs.iter().map(|f| f.on_type(ty)).collect();
                if results.contains(&Some(true)) {
                    Some(true)
                } else if results.iter().all(|r| *r == Some(false)) {
                    Some(false)
                } else {
                    None
                }
            }
            Filter::Not(f) => f.on_type(ty).map(|b| !b),
        }
    }
}

/// Whether some event of type `ty` could pass every filter of `filters` (the type rules
/// none of them out).
pub fn may_match_type(filters: &[Filter], ty: &str) -> bool {
    filters.iter().all(|f| f.on_type(ty) != Some(false))
}

/// Whether `event` passes every filter of `filters` (an empty list matches every event).
pub fn matches_all(filters: &[Filter], event: &CloudEvent) -> bool {
    filters.iter().all(|f| f.matches(event))
}

#[cfg(test)]
mod type_tests {
    use super::*;

    fn map(k: &str, v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(k.to_string(), v.to_string())])
    }

    #[test]
    fn the_type_alone_decides_what_it_can() {
        let ty = "ca.haliburton.permitting.permit.issued";
        let permits = Filter::Prefix(map("type", "ca.haliburton.permitting."));
        let gis = Filter::Prefix(map("type", "ca.haliburton.gis."));
        let dysart = Filter::Exact(map("source", "/dysart/permitting"));
        assert_eq!(permits.on_type(ty), Some(true));
        assert_eq!(gis.on_type(ty), Some(false));
        assert_eq!(dysart.on_type(ty), None);
        assert!(may_match_type(&[permits.clone(), dysart.clone()], ty));
        assert!(!may_match_type(&[gis.clone(), dysart.clone()], ty));
        assert!(may_match_type(&[], ty));
        assert!(!may_match_type(
            &[Filter::Not(Box::new(permits.clone()))],
            ty
        ));
        assert!(may_match_type(
            &[Filter::Any(vec![
                gis.clone(),
                Filter::Suffix(map("type", ".issued"))
            ])],
            ty
        ));
        assert!(!may_match_type(&[Filter::All(vec![permits, gis])], ty));
        assert!(may_match_type(&[Filter::Not(Box::new(dysart))], ty));
    }
}
