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

/// Whether `event` passes every filter of `filters` (an empty list matches every event).
pub fn matches_all(filters: &[Filter], event: &CloudEvent) -> bool {
    filters.iter().all(|f| f.matches(event))
}
