//! Specification of tenant isolation: the routing table, sharing rules, claimed tenants,
//! tenant and subscription names, and the idempotency key of a delivery.

use std::collections::BTreeSet;
use std::time::Duration;

use civicbus_core::delivery::idempotency_key;
use civicbus_core::subscription::{AmqpSinkSpec, HttpMode, WebhookSpec};
use civicbus_core::tenant::{Audience, SharingRule, check_claimed_tenant, validate_name};
use civicbus_core::{
    CloudEvent, EnvelopeErrorKind, ExtensionValue, Filter, RoutingTable, SinkSpec, Subscription,
};

fn webhook() -> SinkSpec {
    SinkSpec::Webhook(WebhookSpec {
        url: "https://records.example/hooks/civicbus".into(),
        secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
        mode: HttpMode::default(),
        timeout: Duration::from_secs(10),
    })
}

fn sub(tenant: &str, id: &str, filters: Vec<Filter>) -> Subscription {
    Subscription {
        id: id.into(),
        tenant: tenant.into(),
        filters,
        sink: webhook(),
        concurrency: 4,
        retry: civicbus_core::RetryPolicy::default(),
        ordering: civicbus_core::subscription::Ordering::Unordered,
    }
}

fn type_prefix(p: &str) -> Vec<Filter> {
    vec![Filter::Prefix(
        [("type".to_string(), p.to_string())].into_iter().collect(),
    )]
}

fn event(tenant: Option<&str>, ty: &str) -> CloudEvent {
    let mut ev = CloudEvent::new("e-1", "/somewhere/system", ty).expect("valid");
    if let Some(t) = tenant {
        ev.set_tenant(t);
    }
    ev
}

const GIS: &str = "ca.haliburton.gis.";

/// The county and its four partners, each with a few subscriptions.
fn subscriptions() -> Vec<Subscription> {
    vec![
        sub("county", "everything", vec![]),
        sub("county", "gis-mirror", type_prefix(GIS)),
        sub("dysart", "everything", vec![]),
        sub(
            "dysart",
            "parcels",
            type_prefix("ca.haliburton.gis.parcel."),
        ),
        sub("minden-hills", "gis", type_prefix(GIS)),
        sub(
            "highlands-east",
            "permits",
            type_prefix("ca.haliburton.permitting."),
        ),
        sub(
            "algonquin-highlands",
            "finance",
            type_prefix("ca.haliburton.finance."),
        ),
    ]
}

fn county_shares() -> Vec<SharingRule> {
    vec![
        SharingRule {
            owner: "county".into(),
            type_prefix: GIS.into(),
            audience: Audience::All,
        },
        SharingRule {
            owner: "county".into(),
            type_prefix: "ca.haliburton.finance.".into(),
            audience: Audience::Tenants(vec!["algonquin-highlands".into(), "dysart".into()]),
        },
    ]
}

fn routed(table: &RoutingTable, ev: &CloudEvent) -> BTreeSet<String> {
    table.route(ev).into_iter().map(Subscription::key).collect()
}

#[test]
fn routing_table() {
    let shared = RoutingTable::new(subscriptions(), county_shares());
    let isolated = RoutingTable::new(subscriptions(), vec![]);
    // (case, event tenant, event type, keys with the county's sharing rules, keys without)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        Vec<&'a str>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "own tenant's event reaches only its own matching subscriptions",
            Some("dysart"),
            "ca.haliburton.permitting.permit.issued",
            vec!["dysart.everything"],
            vec!["dysart.everything"],
        ),
        (
            "another tenant's permit is invisible to highlands-east's permit subscription",
            Some("minden-hills"),
            "ca.haliburton.permitting.permit.issued",
            vec![],
            vec![],
        ),
        (
            "county GIS events are shared with all",
            Some("county"),
            "ca.haliburton.gis.parcel.updated",
            vec![
                "county.everything",
                "county.gis-mirror",
                "dysart.everything",
                "dysart.parcels",
                "minden-hills.gis",
            ],
            vec!["county.everything", "county.gis-mirror"],
        ),
        (
            "sharing still applies the subscriber's filters",
            Some("county"),
            "ca.haliburton.gis.road.closed",
            vec![
                "county.everything",
                "county.gis-mirror",
                "dysart.everything",
                "minden-hills.gis",
            ],
            vec!["county.everything", "county.gis-mirror"],
        ),
        (
            "county finance events are shared with the named tenants only",
            Some("county"),
            "ca.haliburton.finance.journal.posted",
            vec![
                "algonquin-highlands.finance",
                "county.everything",
                "dysart.everything",
            ],
            vec!["county.everything"],
        ),
        (
            "sharing by prefix does not leak other types",
            Some("county"),
            "ca.haliburton.permitting.permit.issued",
            vec!["county.everything"],
            vec!["county.everything"],
        ),
        (
            "a type that merely starts with the same letters is not shared",
            Some("county"),
            "ca.haliburton.gisarchive.layer.exported",
            vec!["county.everything"],
            vec!["county.everything"],
        ),
        (
            "the county's rule does not share another tenant's GIS events",
            Some("minden-hills"),
            "ca.haliburton.gis.parcel.updated",
            vec!["minden-hills.gis"],
            vec!["minden-hills.gis"],
        ),
        (
            "an event without a tenant goes nowhere",
            None,
            "ca.haliburton.gis.parcel.updated",
            vec![],
            vec![],
        ),
        (
            "an unknown tenant reaches no one",
            Some("elsewhere"),
            "ca.haliburton.gis.parcel.updated",
            vec![],
            vec![],
        ),
    ];
    for (case, tenant, ty, with_sharing, without) in cases {
        let ev = event(tenant, ty);
        let expect = |keys: Vec<&str>| keys.into_iter().map(String::from).collect::<BTreeSet<_>>();
        assert_eq!(
            routed(&shared, &ev),
            expect(with_sharing),
            "{case} (with sharing)"
        );
        assert_eq!(
            routed(&isolated, &ev),
            expect(without),
            "{case} (without sharing)"
        );
    }
}

#[test]
fn a_tenant_that_is_not_a_string_is_no_tenant() {
    let table = RoutingTable::new(subscriptions(), county_shares());
    let mut ev = event(None, "ca.haliburton.gis.parcel.updated");
    ev.extensions
        .insert("tenant".into(), ExtensionValue::Boolean(true));
    assert!(table.route(&ev).is_empty());
}

#[test]
fn route_keeps_the_order_of_the_subscriptions() {
    let table = RoutingTable::new(subscriptions(), county_shares());
    let keys: Vec<String> = table
        .route(&event(Some("county"), "ca.haliburton.gis.parcel.updated"))
        .into_iter()
        .map(Subscription::key)
        .collect();
    assert_eq!(
        keys,
        [
            "county.everything",
            "county.gis-mirror",
            "dysart.everything",
            "dysart.parcels",
            "minden-hills.gis"
        ]
    );
}

#[test]
fn visibility_table() {
    let table = RoutingTable::new(vec![], county_shares());
    // (owner, type, viewer, visible)
    let cases = [
        (
            "dysart",
            "ca.haliburton.permitting.permit.issued",
            "dysart",
            true,
        ),
        (
            "dysart",
            "ca.haliburton.gis.parcel.updated",
            "county",
            false,
        ),
        (
            "county",
            "ca.haliburton.gis.parcel.updated",
            "highlands-east",
            true,
        ),
        ("county", "ca.haliburton.gis.", "highlands-east", true),
        ("county", "ca.haliburton.gis", "highlands-east", false),
        (
            "county",
            "ca.haliburton.finance.invoice.paid",
            "dysart",
            true,
        ),
        (
            "county",
            "ca.haliburton.finance.invoice.paid",
            "minden-hills",
            false,
        ),
        (
            "county",
            "CA.HALIBURTON.GIS.PARCEL.UPDATED",
            "dysart",
            false,
        ),
        (
            "county",
            "ca.haliburton.records.record.declared",
            "dysart",
            false,
        ),
    ];
    for (owner, ty, viewer, visible) in cases {
        assert_eq!(
            table.visible(owner, ty, viewer),
            visible,
            "{owner} {ty} → {viewer}"
        );
    }
}

#[test]
fn sharing_rule_allows() {
    let rule = SharingRule {
        owner: "county".into(),
        type_prefix: GIS.into(),
        audience: Audience::Tenants(vec!["dysart".into()]),
    };
    assert!(rule.allows("county", "ca.haliburton.gis.parcel.updated", "dysart"));
    assert!(!rule.allows("county", "ca.haliburton.gis.parcel.updated", "minden-hills"));
    assert!(!rule.allows("dysart", "ca.haliburton.gis.parcel.updated", "dysart"));
    assert!(!rule.allows("county", "ca.haliburton.permitting.permit.issued", "dysart"));
    let nobody = SharingRule {
        audience: Audience::Tenants(vec![]),
        ..rule
    };
    assert!(!nobody.allows("county", "ca.haliburton.gis.parcel.updated", "dysart"));
}

#[test]
fn subscriptions_are_found_by_key() {
    let table = RoutingTable::new(subscriptions(), vec![]);
    assert_eq!(table.subscriptions().len(), 7);
    let s = table.get("dysart.parcels").expect("exists");
    assert_eq!((s.tenant.as_str(), s.id.as_str()), ("dysart", "parcels"));
    assert!(table.get("county.parcels").is_none());
    assert!(table.get("dysart").is_none());
    assert_eq!(s.sink.kind(), "webhook");
    let amqp = SinkSpec::Amqp(AmqpSinkSpec {
        exchange: String::new(),
        routing_key: None,
    });
    assert_eq!(amqp.kind(), "amqp");
}

// ---------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------

#[test]
fn claimed_tenant_must_be_the_credentials() {
    assert!(check_claimed_tenant(None, "dysart").is_ok());
    assert!(check_claimed_tenant(Some("dysart"), "dysart").is_ok());
    for claimed in ["county", "Dysart", "", "dysart "] {
        let err = check_claimed_tenant(Some(claimed), "dysart").expect_err(claimed);
        assert_eq!(err.kind, EnvelopeErrorKind::InvalidAttribute);
        assert_eq!(err.field, "tenant");
        assert!(err.message.contains(&format!("`{claimed}`")), "{err}");
        assert!(err.message.contains("`dysart`"), "{err}");
    }
}

#[test]
fn tenant_and_subscription_names() {
    let longest = format!("a{}", "b".repeat(62));
    let too_long = format!("a{}", "b".repeat(63));
    // (name, valid)
    let cases: Vec<(&str, bool)> = vec![
        ("county", true),
        ("dysart", true),
        ("algonquin-highlands", true),
        ("minden-hills", true),
        ("a", true),
        ("a1", true),
        ("gis-2026", true),
        (&longest, true),
        ("", false),
        (&too_long, false),
        ("County", false),
        ("1county", false),
        ("-dysart", false),
        ("dysart_et_al", false),
        ("dysart.et.al", false),
        ("dysart et al", false),
        ("minden/hills", false),
        ("café", false),
        ("é", false),
    ];
    for (name, valid) in cases {
        let result = validate_name("tenant", name);
        assert_eq!(result.is_ok(), valid, "{name:?}");
        if let Err(message) = result {
            assert!(
                message.starts_with(&format!("tenant `{name}` is not a valid name")),
                "{message}"
            );
            assert!(message.contains("1-63 lower-case letters"), "{message}");
        }
    }
    let err = validate_name("subscription", "Bad").expect_err("upper case");
    assert!(err.starts_with("subscription `Bad`"), "{err}");
}

#[test]
fn subscription_keys_are_unambiguous() {
    // Names cannot hold '.', so `<tenant>.<id>` splits back into its parts.
    let s = sub("minden-hills", "gis", vec![]);
    assert_eq!(s.key(), "minden-hills.gis");
    assert!(validate_name("tenant", "minden.hills").is_err());
}

// ---------------------------------------------------------------------------------------
// Idempotency keys
// ---------------------------------------------------------------------------------------

#[test]
fn idempotency_key_is_stable() {
    let key = idempotency_key(
        "dysart.records",
        "/dysart/permitting",
        "P-2026-0042-issued",
        0,
    );
    assert_eq!(
        key,
        idempotency_key(
            "dysart.records",
            "/dysart/permitting",
            "P-2026-0042-issued",
            0
        )
    );
    assert!(key.starts_with("msg_"), "{key}");
    let hex = &key["msg_".len()..];
    assert_eq!(hex.len(), 32);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{key}"
    );
    // Pinned: a redelivery after an upgrade must produce the same key, so the
    // derivation may never change.
    assert_eq!(key, PINNED_KEY);
}

/// `msg_` + hex of the first 16 bytes of SHA-256 over each of subscription key, source
/// and id as (u64 big-endian byte length, bytes), then the output index as u32 big-endian;
/// computed independently of the crate.
const PINNED_KEY: &str = "msg_0184d73a5aae8dfe629d7280f0c7c98c";

#[test]
fn idempotency_key_differs_when_any_part_differs() {
    let base = ("dysart.records", "/dysart/permitting", "P-1", 0_u32);
    let variants = [
        ("county.records", "/dysart/permitting", "P-1", 0),
        ("dysart.records", "/county/permitting", "P-1", 0),
        ("dysart.records", "/dysart/permitting", "P-2", 0),
        ("dysart.records", "/dysart/permitting", "P-1", 1),
        ("dysart.records", "/dysart/permitting", "p-1", 0),
        ("dysart.records", "/dysart/permitting", "P-1", u32::MAX),
    ];
    let k = |(a, b, c, d): (&str, &str, &str, u32)| idempotency_key(a, b, c, d);
    let mut seen = BTreeSet::from([k(base)]);
    for v in variants {
        assert!(seen.insert(k(v)), "{v:?} collides");
    }
}

#[test]
fn idempotency_key_is_not_ambiguous_under_concatenation() {
    let pairs = [
        (("a", "bc", "x"), ("ab", "c", "x")),
        (("s", "a", "bc"), ("s", "ab", "c")),
        (("s", "", "ab"), ("s", "ab", "")),
        (("", "s", "ab"), ("s", "", "ab")),
        (
            ("dysart.records", "/dysart", "/permitting#1"),
            ("dysart.records", "/dysart/permitting", "#1"),
        ),
    ];
    for ((a1, b1, c1), (a2, b2, c2)) in pairs {
        assert_ne!(
            idempotency_key(a1, b1, c1, 0),
            idempotency_key(a2, b2, c2, 0),
            "({a1:?},{b1:?},{c1:?}) vs ({a2:?},{b2:?},{c2:?})"
        );
    }
    // The output index is not glued onto the id either.
    assert_ne!(
        idempotency_key("s", "src", "1", 1),
        idempotency_key("s", "src", "11", 0)
    );
}
