//! Specification of the CloudEvents Subscriptions API filter dialects (`exact`, `prefix`,
//! `suffix`, `all`, `any`, `not`), their JSON and TOML forms, and `Filter::problems`.

use std::collections::BTreeMap;

use civicbus_core::filter::matches_all;
use civicbus_core::{CloudEvent, ExtensionValue, Filter};
use serde::Deserialize;

/// A permit-issued event of Dysart with string, integer and boolean extensions.
fn permit_issued() -> CloudEvent {
    let mut ev = CloudEvent::new(
        "P-2026-0042-issued",
        "/dysart/permitting",
        "ca.haliburton.permitting.permit.issued",
    )
    .expect("valid");
    ev.subject = Some("P-2026-0042".into());
    ev.datacontenttype = Some("application/json".into());
    ev.set_tenant("dysart");
    ev.extensions.insert(
        "partitionkey".into(),
        ExtensionValue::String("P-2026-0042".into()),
    );
    ev.extensions
        .insert("priority".into(), ExtensionValue::Integer(3));
    ev.extensions
        .insert("urgent".into(), ExtensionValue::Boolean(true));
    ev
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn exact(pairs: &[(&str, &str)]) -> Filter {
    Filter::Exact(map(pairs))
}

fn prefix(pairs: &[(&str, &str)]) -> Filter {
    Filter::Prefix(map(pairs))
}

fn suffix(pairs: &[(&str, &str)]) -> Filter {
    Filter::Suffix(map(pairs))
}

fn not(f: Filter) -> Filter {
    Filter::Not(Box::new(f))
}

const TYPE: &str = "ca.haliburton.permitting.permit.issued";

#[test]
fn dialects_table() {
    // (case, filter, matches the Dysart permit-issued event)
    let cases: Vec<(&str, Filter, bool)> = vec![
        // exact
        ("exact type", exact(&[("type", TYPE)]), true),
        (
            "exact other type",
            exact(&[("type", "ca.haliburton.permitting.permit.finaled")]),
            false,
        ),
        (
            "exact is not a prefix",
            exact(&[("type", "ca.haliburton.permitting.")]),
            false,
        ),
        (
            "exact is case-sensitive",
            exact(&[("type", "CA.HALIBURTON.PERMITTING.PERMIT.ISSUED")]),
            false,
        ),
        (
            "exact source",
            exact(&[("source", "/dysart/permitting")]),
            true,
        ),
        ("exact subject", exact(&[("subject", "P-2026-0042")]), true),
        ("exact specversion", exact(&[("specversion", "1.0")]), true),
        ("exact id", exact(&[("id", "P-2026-0042-issued")]), true),
        (
            "exact datacontenttype",
            exact(&[("datacontenttype", "application/json")]),
            true,
        ),
        (
            "exact string extension",
            exact(&[("tenant", "dysart")]),
            true,
        ),
        (
            "exact string extension, other value",
            exact(&[("tenant", "county")]),
            false,
        ),
        (
            "exact integer extension as text",
            exact(&[("priority", "3")]),
            true,
        ),
        (
            "exact integer extension, other value",
            exact(&[("priority", "03")]),
            false,
        ),
        (
            "exact boolean extension as text",
            exact(&[("urgent", "true")]),
            true,
        ),
        (
            "exact boolean extension is lower case",
            exact(&[("urgent", "True")]),
            false,
        ),
        (
            "exact empty value on present attribute",
            exact(&[("tenant", "")]),
            false,
        ),
        // prefix
        (
            "prefix of type",
            prefix(&[("type", "ca.haliburton.permitting.")]),
            true,
        ),
        ("whole type as prefix", prefix(&[("type", TYPE)]), true),
        (
            "prefix of another domain",
            prefix(&[("type", "ca.haliburton.gis.")]),
            false,
        ),
        (
            "prefix is case-sensitive",
            prefix(&[("type", "CA.haliburton.")]),
            false,
        ),
        (
            "prefix longer than the value",
            prefix(&[("type", "ca.haliburton.permitting.permit.issued.v2")]),
            false,
        ),
        ("prefix of source", prefix(&[("source", "/dysart/")]), true),
        (
            "prefix of an extension",
            prefix(&[("partitionkey", "P-2026-")]),
            true,
        ),
        (
            "prefix of an integer extension",
            prefix(&[("priority", "3")]),
            true,
        ),
        (
            "empty prefix matches a present attribute",
            prefix(&[("subject", "")]),
            true,
        ),
        // suffix
        ("suffix of type", suffix(&[("type", ".issued")]), true),
        (
            "suffix of another action",
            suffix(&[("type", ".finaled")]),
            false,
        ),
        (
            "suffix is case-sensitive",
            suffix(&[("type", ".ISSUED")]),
            false,
        ),
        ("suffix of subject", suffix(&[("subject", "-0042")]), true),
        (
            "suffix of an extension",
            suffix(&[("tenant", "sart")]),
            true,
        ),
        (
            "suffix of a boolean extension",
            suffix(&[("urgent", "ue")]),
            true,
        ),
        // missing attributes never match
        (
            "exact on missing dataschema",
            exact(&[("dataschema", "https://x")]),
            false,
        ),
        ("exact empty on missing time", exact(&[("time", "")]), false),
        (
            "prefix on missing extension",
            prefix(&[("replayid", "")]),
            false,
        ),
        (
            "suffix on missing extension",
            suffix(&[("dataref", ".pdf")]),
            false,
        ),
        (
            "exact on data is no attribute",
            exact(&[("data", "")]),
            false,
        ),
        (
            "not of a missing attribute matches",
            not(exact(&[("dataschema", "https://x")])),
            true,
        ),
        // several attributes in one filter: all must match
        (
            "exact type and source",
            exact(&[("type", TYPE), ("source", "/dysart/permitting")]),
            true,
        ),
        (
            "exact type and wrong source",
            exact(&[("type", TYPE), ("source", "/county/gis")]),
            false,
        ),
        (
            "prefix type and tenant",
            prefix(&[("type", "ca.haliburton."), ("tenant", "dys")]),
            true,
        ),
        (
            "prefix type and missing attribute",
            prefix(&[("type", "ca.haliburton."), ("dataref", "")]),
            false,
        ),
        (
            "suffix two attributes, one wrong",
            suffix(&[("type", ".issued"), ("source", "/gis")]),
            false,
        ),
        (
            "exact with no attribute matches (vacuous)",
            exact(&[]),
            true,
        ),
        // all / any / not
        ("empty all matches", Filter::All(vec![]), true),
        ("empty any never matches", Filter::Any(vec![]), false),
        ("not of empty all", not(Filter::All(vec![])), false),
        ("not of empty any", not(Filter::Any(vec![])), true),
        ("not of a match", not(exact(&[("tenant", "dysart")])), false),
        ("double not", not(not(exact(&[("tenant", "dysart")]))), true),
        (
            "all of two matches",
            Filter::All(vec![
                prefix(&[("type", "ca.haliburton.")]),
                suffix(&[("type", ".issued")]),
            ]),
            true,
        ),
        (
            "all with one miss",
            Filter::All(vec![
                prefix(&[("type", "ca.haliburton.")]),
                suffix(&[("type", ".finaled")]),
            ]),
            false,
        ),
        (
            "any with one match",
            Filter::Any(vec![
                exact(&[("tenant", "county")]),
                exact(&[("tenant", "dysart")]),
            ]),
            true,
        ),
        (
            "any with no match",
            Filter::Any(vec![
                exact(&[("tenant", "county")]),
                exact(&[("tenant", "minden-hills")]),
            ]),
            false,
        ),
        (
            "three levels: all[any[miss, not(miss)], not(any[miss])]",
            Filter::All(vec![
                Filter::Any(vec![
                    exact(&[("tenant", "county")]),
                    not(prefix(&[("type", "ca.haliburton.gis.")])),
                ]),
                not(Filter::Any(vec![suffix(&[("type", ".cancelled")])])),
            ]),
            true,
        ),
        (
            "three levels: any[all[match, miss], not(all[match, not(miss)])]",
            Filter::Any(vec![
                Filter::All(vec![
                    exact(&[("tenant", "dysart")]),
                    exact(&[("urgent", "false")]),
                ]),
                not(Filter::All(vec![
                    exact(&[("priority", "3")]),
                    not(exact(&[("subject", "P-9999")])),
                ])),
            ]),
            false,
        ),
        (
            "four levels: not(any[all[not(match)], all[]])",
            not(Filter::Any(vec![
                Filter::All(vec![not(exact(&[("tenant", "dysart")]))]),
                Filter::All(vec![Filter::Any(vec![])]),
            ])),
            true,
        ),
        (
            "four levels: all[any[all[not(any[miss, match])]], match]",
            Filter::All(vec![
                Filter::Any(vec![Filter::All(vec![not(Filter::Any(vec![
                    exact(&[("tenant", "county")]),
                    suffix(&[("source", "/permitting")]),
                ]))])]),
                exact(&[("tenant", "dysart")]),
            ]),
            false,
        ),
    ];
    let ev = permit_issued();
    let mut failures = Vec::new();
    for (case, filter, expected) in &cases {
        if filter.matches(&ev) != *expected {
            failures.push(format!("{case}: expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn an_array_of_filters_is_and() {
    let ev = permit_issued();
    let yes = exact(&[("tenant", "dysart")]);
    let also_yes = prefix(&[("type", "ca.haliburton.permitting.")]);
    let no = suffix(&[("type", ".finaled")]);
    // (filters, matches)
    let cases: Vec<(Vec<Filter>, bool)> = vec![
        (vec![], true),
        (vec![yes.clone()], true),
        (vec![yes.clone(), also_yes.clone()], true),
        (vec![yes.clone(), no.clone()], false),
        (vec![no.clone(), yes.clone()], false),
        (vec![Filter::Any(vec![])], false),
        (vec![Filter::All(vec![]), also_yes], true),
    ];
    for (filters, expected) in cases {
        assert_eq!(matches_all(&filters, &ev), expected, "{filters:?}");
        assert_eq!(
            matches_all(&filters, &ev),
            Filter::All(filters.clone()).matches(&ev),
            "an array means the same as `all`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// JSON and TOML forms
// ---------------------------------------------------------------------------------------

#[test]
fn filters_from_json() {
    // (JSON as in the CloudEvents Subscriptions API, the filter it means)
    let cases: Vec<(&str, Filter)> = vec![
        (
            r#"{"exact": {"type": "ca.haliburton.gis.parcel.updated"}}"#,
            exact(&[("type", "ca.haliburton.gis.parcel.updated")]),
        ),
        (
            r#"{"prefix": {"type": "ca.haliburton.", "source": "/county/"}}"#,
            prefix(&[("type", "ca.haliburton."), ("source", "/county/")]),
        ),
        (
            r#"{"suffix": {"subject": ".pdf"}}"#,
            suffix(&[("subject", ".pdf")]),
        ),
        (r#"{"all": []}"#, Filter::All(vec![])),
        (
            r#"{"any": [{"exact": {"tenant": "county"}}, {"exact": {"tenant": "dysart"}}]}"#,
            Filter::Any(vec![
                exact(&[("tenant", "county")]),
                exact(&[("tenant", "dysart")]),
            ]),
        ),
        (
            r#"{"not": {"suffix": {"type": ".deleted"}}}"#,
            not(suffix(&[("type", ".deleted")])),
        ),
        (
            r#"{"all": [{"any": [{"not": {"exact": {"tenant": "county"}}}]}]}"#,
            Filter::All(vec![Filter::Any(vec![not(exact(&[("tenant", "county")]))])]),
        ),
    ];
    for (json, expected) in cases {
        let parsed: Filter = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(parsed, expected, "{json}");
        let back = serde_json::to_value(&parsed).expect("serialises");
        let original: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(back, original, "serialises back to the same JSON");
    }
    let array: Vec<Filter> = serde_json::from_str(
        r#"[{"prefix": {"type": "ca.haliburton.permitting."}}, {"exact": {"tenant": "dysart"}}]"#,
    )
    .expect("an array of filters");
    assert!(matches_all(&array, &permit_issued()));
}

#[test]
fn invalid_json_filters_are_rejected_with_a_clear_error() {
    // (JSON, words the serde error must contain)
    let cases: Vec<(&str, &[&str])> = vec![
        (
            r#"{"regex": {"type": "ca\\..*"}}"#,
            &[
                "unknown variant `regex`",
                "expected one of `exact`, `prefix`, `suffix`, `all`, `any`, `not`",
            ],
        ),
        (r#"{"Exact": {"type": "x"}}"#, &["unknown variant `Exact`"]),
        (
            r#"{"exact": {"priority": 3}}"#,
            &["invalid type: integer `3`, expected a string"],
        ),
        (
            r#"{"all": {"exact": {"type": "x"}}}"#,
            &["invalid type: map, expected a sequence"],
        ),
        (r#"{"exact": {"type": "x"}, "prefix": {"type": "y"}}"#, &[]),
        (r#"{}"#, &[]),
        (r#""exact""#, &[]),
    ];
    for (json, words) in cases {
        let err = serde_json::from_str::<Filter>(json)
            .expect_err(json)
            .to_string();
        for w in words {
            assert!(err.contains(w), "{json}: `{err}` should contain `{w}`");
        }
    }
}

/// A subscription's filters as they appear in the TOML configuration.
#[derive(Debug, Deserialize)]
struct SubscriptionFilters {
    filters: Vec<Filter>,
}

#[test]
fn filters_from_toml() {
    let toml_text = r#"
        filters = [
            { prefix = { type = "ca.haliburton.permitting." } },
            { not = { exact = { subject = "P-TEST" } } },
            { any = [
                { exact = { tenant = "dysart" } },
                { all = [ { suffix = { source = "/permitting" } }, { exact = { urgent = "true" } } ] },
            ] },
            { all = [] },
        ]
    "#;
    let parsed: SubscriptionFilters = toml::from_str(toml_text).expect("valid TOML");
    let expected = vec![
        prefix(&[("type", "ca.haliburton.permitting.")]),
        not(exact(&[("subject", "P-TEST")])),
        Filter::Any(vec![
            exact(&[("tenant", "dysart")]),
            Filter::All(vec![
                suffix(&[("source", "/permitting")]),
                exact(&[("urgent", "true")]),
            ]),
        ]),
        Filter::All(vec![]),
    ];
    assert_eq!(parsed.filters, expected);
    assert!(matches_all(&parsed.filters, &permit_issued()));

    let tables = r#"
        [[filters]]
        exact = { tenant = "county" }

        [[filters]]
        [filters.prefix]
        type = "ca.haliburton.gis."
        source = "/county/"

        [[filters]]
        [[filters.not.any]]
        suffix = { type = ".deleted" }
    "#;
    let parsed: SubscriptionFilters = toml::from_str(tables).expect("valid TOML tables");
    assert_eq!(
        parsed.filters,
        vec![
            exact(&[("tenant", "county")]),
            prefix(&[("type", "ca.haliburton.gis."), ("source", "/county/")]),
            not(Filter::Any(vec![suffix(&[("type", ".deleted")])])),
        ]
    );
}

#[test]
fn invalid_toml_filters_are_rejected_with_a_clear_error() {
    // (TOML, words the error must contain)
    let cases: Vec<(&str, &[&str])> = vec![
        (
            r#"filters = [ { regex = { type = "ca.*" } } ]"#,
            &[
                "line 1, column 15",
                "unknown variant `regex`",
                "expected one of `exact`, `prefix`, `suffix`, `all`, `any`, `not`",
            ],
        ),
        (
            r#"filters = [ { exact = { priority = 3 } } ]"#,
            &["expected a string"],
        ),
        (
            r#"filters = [ { exact = { type = "a" }, prefix = { type = "b" } } ]"#,
            &["wanted exactly 1 element"],
        ),
        (r#"filters = [ { } ]"#, &[]),
        (r#"filters = { exact = { type = "a" } }"#, &[]),
    ];
    for (text, words) in cases {
        let err = toml::from_str::<SubscriptionFilters>(text)
            .expect_err(text)
            .to_string();
        for w in words {
            assert!(err.contains(w), "{text}: `{err}` should contain `{w}`");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Filter::problems
// ---------------------------------------------------------------------------------------

#[test]
fn problems_name_the_path_of_each_mistake() {
    // (filter, problems found below `filters[0]`)
    let cases: Vec<(Filter, Vec<&str>)> = vec![
        (exact(&[("type", TYPE)]), vec![]),
        (exact(&[("type", "")]), vec![]),
        (Filter::All(vec![]), vec![]),
        (
            exact(&[]),
            vec![
                r#"filters[0].exact: names no attribute; write e.g. { exact = { type = "ca.haliburton." } }"#,
            ],
        ),
        (
            prefix(&[]),
            vec![
                r#"filters[0].prefix: names no attribute; write e.g. { prefix = { type = "ca.haliburton." } }"#,
            ],
        ),
        (
            prefix(&[("type", "")]),
            vec![
                "filters[0].prefix.type: an empty prefix matches every event that has the attribute; remove the filter or give a value",
            ],
        ),
        (
            suffix(&[("subject", "")]),
            vec![
                "filters[0].suffix.subject: an empty suffix matches every event that has the attribute; remove the filter or give a value",
            ],
        ),
        (
            exact(&[("Type", "x")]),
            vec![
                "filters[0].exact.Type: not a CloudEvents attribute name (lower-case letters and digits only)",
            ],
        ),
        (
            exact(&[("", "x")]),
            vec![
                "filters[0].exact.: not a CloudEvents attribute name (lower-case letters and digits only)",
            ],
        ),
        (
            Filter::Any(vec![]),
            vec!["filters[0].any: an empty `any` never matches; add filters or remove it"],
        ),
        (
            Filter::All(vec![
                exact(&[("type", TYPE)]),
                not(Filter::Any(vec![suffix(&[("my-ext", "")])])),
            ]),
            vec![
                "filters[0].all[1].not.any[0].suffix.my-ext: not a CloudEvents attribute name (lower-case letters and digits only)",
                "filters[0].all[1].not.any[0].suffix.my-ext: an empty suffix matches every event that has the attribute; remove the filter or give a value",
            ],
        ),
        (
            Filter::Any(vec![exact(&[]), not(not(Filter::Any(vec![])))]),
            vec![
                r#"filters[0].any[0].exact: names no attribute; write e.g. { exact = { type = "ca.haliburton." } }"#,
                "filters[0].any[1].not.not.any: an empty `any` never matches; add filters or remove it",
            ],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(filter.problems("filters[0]"), expected, "{filter:?}");
    }
}
