//! The store against a real SQLite file and a real PostgreSQL server.
//!
//! Every scenario runs on both backends: `sqlite::<name>` uses a file in a temporary
//! directory, `postgres::<name>` a fresh database on `postgres://postgres@127.0.0.1:5432`
//! (override the server with `CIVICBUS_TEST_PG_URL`, which must name an existing
//! database to connect to for `CREATE DATABASE`). A missing PostgreSQL fails the tests.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use civicbus_core::ports::{
    ArchivedEvent, AttemptStatus, DeadLetter, DeadLetterQuery, DeadLetterReason, DeliveryAttempt,
    DisableEndpoint, DisableReason, EventQuery, EventStore, OutboundMessage, ParkedDelivery,
    PortErrorKind, QuarantineRecord,
};
use civicbus_core::{CloudEvent, Data, ExtensionValue};
use civicbus_store::{AuditBreakKind, Backend, SqlStore, StoreError, StoreOptions, audit_hash};
use serde_json::json;
use sqlx::Connection as _;

const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn pg_admin_url() -> String {
    std::env::var("CIVICBUS_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_string())
}

/// A database of its own for one test; dropped (best effort) when the value is dropped.
struct TestDb {
    url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("civicbus.db");
                TestDb {
                    url: format!("sqlite://{}", path.display()),
                    backend,
                    _dir: Some(dir),
                    pg_database: None,
                }
            }
            Backend::Postgres => {
                let name = format!("civicbus_t_{}", uuid::Uuid::new_v4().simple());
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is required for these tests: cannot connect to {admin}: {e}"
                        )
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let (base, _) = admin.rsplit_once('/').expect("admin URL names a database");
                TestDb {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                    pg_database: Some(name),
                }
            }
        }
    }

    async fn store(&self) -> SqlStore {
        let store = SqlStore::connect(&self.url).await.expect("connect store");
        assert_eq!(store.backend(), self.backend);
        store
    }

    /// Run SQL directly against the database, bypassing the store (to tamper with it).
    async fn exec(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .expect("raw SQL");
        let _ = conn.close().await;
    }
}

impl TestDb {
    /// One text value read directly from the database.
    async fn query_text(&self, sql: &str) -> String {
        use sqlx::Row as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        let value: String = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .expect("raw query")
            .try_get(0)
            .expect("text column");
        let _ = conn.close().await;
        value
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else {
            return;
        };
        let admin = pg_admin_url();
        // Best effort, on a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// Run each scenario against both backends.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::new(civicbus_store::Backend::Sqlite).await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::new(civicbus_store::Backend::Postgres).await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}

both_backends!(
    archive_insert_duplicate_and_audit,
    search_honours_every_filter,
    attempts_and_is_delivered,
    quarantine_round_trip_with_binary_body,
    audit_chain_verifies_and_detects_an_edited_row,
    audit_chain_detects_a_deleted_row,
    concurrent_writers_keep_the_chain_gap_free,
    migrations_are_idempotent,
    corrupt_rows_are_errors_naming_the_row,
    closed_store_is_unavailable,
    burst_of_concurrent_writes_commits_all_with_a_linear_chain,
    a_failing_write_fails_alone_in_its_batch,
    writes_after_close_are_unavailable,
    large_and_small_writes_share_one_linear_chain,
    dead_letter_round_trip_idempotence_and_audit,
    dead_letters_list_filters_and_order,
    dead_letters_share_a_batch_with_other_writes,
    endpoint_failing_disable_notify_enable_and_audit,
    ordering_heads_and_parked_deliveries_in_order,
    transform_runs_are_kept_once_and_audited,
);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const BASE_US: i64 = 1_780_000_000_000_000;

fn at(offset_s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(BASE_US + offset_s * 1_000_000 + 123).expect("timestamp")
}

fn event(tenant: &str, source: &str, id: &str, ty: &str, subject: Option<&str>) -> CloudEvent {
    let mut ev = CloudEvent::new(id, source, ty).expect("valid event");
    ev.subject = subject.map(str::to_string);
    ev.time = Some("2026-06-01T12:00:00Z".into());
    ev.datacontenttype = Some("application/json".into());
    ev.data = Some(Data::Json(
        json!({ "permit_number": subject, "fee": { "amount": 125.5, "currency": "CAD" } }),
    ));
    ev.set_tenant(tenant);
    ev
}

fn archived(ev: CloudEvent, received_s: i64) -> ArchivedEvent {
    ArchivedEvent {
        tenant: ev.tenant().expect("tenant stamped").to_string(),
        event: ev,
        received_at: at(received_s),
        actor: "permits-system".into(),
    }
}

fn attempt(key: &str, n: u32, status: AttemptStatus, at_s: i64) -> DeliveryAttempt {
    DeliveryAttempt {
        idempotency_key: key.into(),
        tenant: "county".into(),
        subscription: "county.records-filing".into(),
        event_tenant: "dysart".into(),
        event_source: "/dysart/permitting".into(),
        event_id: "P-1".into(),
        attempt: n,
        status,
        response_code: match status {
            AttemptStatus::Delivered => Some(200),
            AttemptStatus::Retryable => Some(503),
            _ => None,
        },
        error: (status != AttemptStatus::Delivered).then(|| "HTTP 503 from subscriber".into()),
        duration: Duration::from_micros(12_345),
        at: at(at_s),
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

async fn archive_insert_duplicate_and_audit(db: &TestDb) {
    let store = db.store().await;
    let ev = archived(
        event(
            "dysart",
            "/dysart/permitting",
            "P-1",
            "ca.haliburton.permitting.permit.issued",
            Some("BP-2026-0001"),
        ),
        0,
    );
    let routed = vec![
        "county.records-filing".to_string(),
        "county.gis-link".to_string(),
    ];

    assert!(store.archive(&ev, &routed).await.expect("archive"));
    assert!(!store.archive(&ev, &routed).await.expect("archive again"));
    // The same source and id under another tenant is a different event.
    let other = archived(
        event(
            "minden",
            "/dysart/permitting",
            "P-1",
            "ca.haliburton.permitting.permit.issued",
            None,
        ),
        1,
    );
    assert!(
        store
            .archive(&other, &[])
            .await
            .expect("archive other tenant")
    );

    let back = store
        .get_event("dysart", "/dysart/permitting", "P-1")
        .await
        .expect("get")
        .expect("archived");
    assert_eq!(back, ev);
    assert!(
        store
            .get_event("dysart", "/dysart/permitting", "nope")
            .await
            .expect("get missing")
            .is_none()
    );
    assert_eq!(store.count_events(None).await.expect("count"), 2);
    assert_eq!(store.count_events(Some("dysart")).await.expect("count"), 1);
    assert_eq!(store.count_events(Some("nobody")).await.expect("count"), 0);

    let log = store.audit_entries(0, 0).await.expect("audit");
    assert_eq!(
        log.len(),
        4,
        "received+routed twice, nothing for the duplicate"
    );
    assert_eq!(
        log.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let (received, routed_entry) = (&log[0], &log[1]);
    assert_eq!(received.action, "received");
    assert_eq!(received.actor, "permits-system");
    assert_eq!(received.tenant.as_deref(), Some("dysart"));
    assert_eq!(received.target, "event:/dysart/permitting#P-1");
    assert_eq!(received.prev_hash, "");
    assert_eq!(audit_hash(received), received.hash);
    assert_eq!(routed_entry.action, "routed");
    assert_eq!(routed_entry.actor, "civicbus");
    assert_eq!(routed_entry.prev_hash, received.hash);
    let detail: serde_json::Value =
        serde_json::from_str(&routed_entry.detail).expect("detail is JSON");
    assert_eq!(
        detail,
        json!({ "subscriptions": ["county.records-filing", "county.gis-link"] })
    );
    for entry in &log {
        assert!(
            !entry.detail.contains("BP-2026-0001") && !entry.detail.contains("125.5"),
            "audit detail must not carry the payload: {}",
            entry.detail
        );
    }
    assert_eq!(store.audit_entries(2, 1).await.expect("page").len(), 1);
    assert_eq!(store.audit_entries(2, 1).await.expect("page")[0].seq, 3);
    assert!(store.verify_audit().await.expect("verify").is_intact());

    // An event whose tenant extension disagrees with its owner is refused.
    let mut wrong = ev.clone();
    wrong.tenant = "minden".into();
    wrong.event.id = "P-2".into();
    let err = store
        .archive(&wrong, &[])
        .await
        .expect_err("tenant mismatch");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    store.close().await;
}

async fn search_honours_every_filter(db: &TestDb) {
    let store = db.store().await;
    let permit = "ca.haliburton.permitting.permit.issued";
    let inspection = "ca.haliburton.permitting.inspection.completed";
    let receipt = "ca.haliburton.finance.receipt.posted";
    let rows = [
        (
            "dysart",
            "/dysart/permitting",
            "E1",
            permit,
            Some("BP-1"),
            10,
        ),
        (
            "dysart",
            "/dysart/permitting",
            "E2",
            inspection,
            Some("BP-1"),
            20,
        ),
        ("dysart", "/dysart/finance", "E3", receipt, Some("R-9"), 30),
        (
            "minden",
            "/minden/permitting",
            "E4",
            permit,
            Some("BP-1"),
            40,
        ),
        ("minden", "/minden/permitting", "E5", permit, None, 50),
    ];
    for (tenant, source, id, ty, subject, t) in rows {
        let ev = archived(event(tenant, source, id, ty, subject), t);
        assert!(store.archive(&ev, &[]).await.expect("archive"));
    }
    let ids = |found: Vec<ArchivedEvent>| -> Vec<String> {
        found.into_iter().map(|a| a.event.id).collect()
    };
    let search = |q: EventQuery| {
        let store = store.clone();
        async move { ids(store.search_events(&q).await.expect("search")) }
    };

    assert_eq!(
        search(EventQuery::default()).await,
        ["E5", "E4", "E3", "E2", "E1"],
        "newest first"
    );
    assert_eq!(
        search(EventQuery {
            tenant: Some("dysart".into()),
            ..Default::default()
        })
        .await,
        ["E3", "E2", "E1"]
    );
    assert_eq!(
        search(EventQuery {
            type_prefix: Some("ca.haliburton.permitting.".into()),
            ..Default::default()
        })
        .await,
        ["E5", "E4", "E2", "E1"]
    );
    // Prefix matching is exact: case matters and % or _ are not wildcards.
    assert!(
        search(EventQuery {
            type_prefix: Some("CA.haliburton".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(
        search(EventQuery {
            type_prefix: Some("ca.%".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(
        search(EventQuery {
            type_prefix: Some("ca_haliburton".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        search(EventQuery {
            subject: Some("BP-1".into()),
            ..Default::default()
        })
        .await,
        ["E4", "E2", "E1"]
    );
    assert_eq!(
        search(EventQuery {
            source: Some("/dysart/finance".into()),
            ..Default::default()
        })
        .await,
        ["E3"]
    );
    assert_eq!(
        search(EventQuery {
            since: Some(at(20)),
            until: Some(at(40)),
            ..Default::default()
        })
        .await,
        ["E3", "E2"],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        search(EventQuery {
            tenant: Some("minden".into()),
            type_prefix: Some(permit.into()),
            subject: Some("BP-1".into()),
            source: Some("/minden/permitting".into()),
            since: Some(at(0)),
            until: Some(at(100)),
            limit: 10,
        })
        .await,
        ["E4"]
    );
    assert_eq!(
        search(EventQuery {
            limit: 2,
            ..Default::default()
        })
        .await,
        ["E5", "E4"]
    );

    // limit 0 means the default of 100.
    for i in 0..101 {
        let ev = archived(
            event("bulk", "/bulk/src", &format!("B{i:03}"), permit, None),
            100 + i,
        );
        assert!(store.archive(&ev, &[]).await.expect("archive bulk"));
    }
    let bulk = search(EventQuery {
        tenant: Some("bulk".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(bulk.len(), 100);
    assert_eq!(bulk[0], "B100");
    assert_eq!(bulk[99], "B001");
    store.close().await;
}

async fn attempts_and_is_delivered(db: &TestDb) {
    let store = db.store().await;
    let key = "county.records-filing:/dysart/permitting:P-1:0";
    assert!(!store.is_delivered(key).await.expect("is_delivered"));

    let first = attempt(key, 1, AttemptStatus::Retryable, 5);
    store.record_attempt(&first).await.expect("record 1");
    assert!(!store.is_delivered(key).await.expect("is_delivered"));
    let second = attempt(key, 2, AttemptStatus::Delivered, 9);
    store.record_attempt(&second).await.expect("record 2");
    assert!(store.is_delivered(key).await.expect("is_delivered"));
    assert!(!store.is_delivered("other-key").await.expect("is_delivered"));

    // Another event's attempt is not listed.
    let mut unrelated = attempt("k2", 1, AttemptStatus::Terminal, 1);
    unrelated.event_id = "P-2".into();
    unrelated.response_code = Some(422);
    store
        .record_attempt(&unrelated)
        .await
        .expect("record other");

    let list = store
        .attempts_for_event("dysart", "/dysart/permitting", "P-1")
        .await
        .expect("attempts");
    assert_eq!(list, vec![first, second], "oldest first, round trip exact");
    assert!(
        store
            .attempts_for_event("minden", "/dysart/permitting", "P-1")
            .await
            .expect("attempts")
            .is_empty()
    );

    let log = store.audit_entries(0, 100).await.expect("audit");
    let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["delivery-failed", "delivered", "delivery-failed"]);
    assert_eq!(log[1].tenant.as_deref(), Some("county"));
    assert_eq!(log[1].target, "event:/dysart/permitting#P-1");
    let detail: serde_json::Value = serde_json::from_str(&log[1].detail).expect("JSON");
    assert_eq!(detail["idempotency_key"], key);
    assert_eq!(detail["subscription"], "county.records-filing");
    assert_eq!(detail["status"], "delivered");
    assert_eq!(detail["response_code"], 200);
    assert_eq!(detail["attempt"], 2);
    assert!(store.verify_audit().await.expect("verify").is_intact());
    store.close().await;
}

async fn quarantine_round_trip_with_binary_body(db: &TestDb) {
    let store = db.store().await;
    let body: Vec<u8> = (0..=255u8).chain([0, 0, 0xff, b'\n']).collect();
    let with_tenant = QuarantineRecord {
        id: "0190b6d2-0000-7000-8000-000000000001".into(),
        tenant: Some("dysart".into()),
        transport: "http".into(),
        reason_kind: "malformed-json".into(),
        field: "".into(),
        reason: "not valid JSON (expected value at line 1 column 1); fix the syntax".into(),
        body: body.clone(),
        headers: vec![
            ("content-type".into(), "application/cloudevents+json".into()),
            ("x-dup".into(), "1".into()),
            ("x-dup".into(), "2 \"quoted\" é".into()),
        ],
        received_at: at(1),
    };
    let no_tenant = QuarantineRecord {
        id: "0190b6d2-0000-7000-8000-000000000002".into(),
        tenant: None,
        transport: "amqp".into(),
        reason_kind: "unknown-amqp-user".into(),
        field: "user_id".into(),
        reason: "the AMQP user is not mapped to a tenant".into(),
        body: Vec::new(),
        headers: Vec::new(),
        received_at: at(2),
    };
    store.quarantine(&with_tenant).await.expect("quarantine 1");
    store.quarantine(&no_tenant).await.expect("quarantine 2");
    // The same record again is a no-op (redelivered message).
    store
        .quarantine(&with_tenant)
        .await
        .expect("quarantine again");

    let all = store.list_quarantine(None, 0).await.expect("list");
    assert_eq!(
        all,
        vec![no_tenant.clone(), with_tenant.clone()],
        "newest first"
    );
    assert_eq!(all[1].body, body);
    assert_eq!(
        store
            .list_quarantine(Some("dysart"), 10)
            .await
            .expect("list"),
        vec![with_tenant.clone()]
    );
    assert_eq!(
        store.list_quarantine(None, 1).await.expect("list"),
        vec![no_tenant.clone()]
    );

    let log = store.audit_entries(0, 10).await.expect("audit");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, "quarantined");
    assert_eq!(log[0].target, format!("quarantine:{}", with_tenant.id));
    assert_eq!(log[0].tenant.as_deref(), Some("dysart"));
    assert_eq!(log[1].tenant, None);
    let detail: serde_json::Value = serde_json::from_str(&log[0].detail).expect("JSON");
    assert_eq!(detail["reason_kind"], "malformed-json");
    assert!(detail.get("body").is_none() && detail.get("headers").is_none());
    assert!(store.verify_audit().await.expect("verify").is_intact());
    store.close().await;
}

/// Archive a few events so the log has `2 * n` entries.
async fn fill_log(store: &SqlStore, n: usize) {
    for i in 0..n {
        let ev = archived(
            event(
                "dysart",
                "/dysart/permitting",
                &format!("A{i}"),
                "ca.haliburton.permitting.permit.issued",
                None,
            ),
            i as i64,
        );
        assert!(
            store
                .archive(&ev, &["county.x".into()])
                .await
                .expect("archive")
        );
    }
}

async fn audit_chain_verifies_and_detects_an_edited_row(db: &TestDb) {
    let store = db.store().await;
    let empty = store.verify_audit().await.expect("verify empty");
    assert!(empty.is_intact());
    assert_eq!((empty.checked, empty.last_seq), (0, 0));

    fill_log(&store, 3).await;
    let ok = store.verify_audit().await.expect("verify");
    assert!(ok.is_intact(), "{ok:?}");
    assert_eq!((ok.checked, ok.last_seq), (6, 6));
    let last = store.audit_entries(5, 1).await.expect("last");
    assert_eq!(ok.last_hash, last[0].hash);

    db.exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4")
        .await;
    let bad = store.verify_audit().await.expect("verify edited");
    let broken = bad.first_broken.clone().expect("edit detected");
    assert_eq!(broken.seq, 4);
    assert_eq!(broken.kind, AuditBreakKind::Altered);
    assert_eq!((bad.checked, bad.last_seq), (3, 3));
    assert!(broken.message.contains("edited"), "{}", broken.message);

    // Re-hashing the edited row does not help: the next row no longer links to it.
    let row = store.audit_entries(3, 1).await.expect("row 4").remove(0);
    let rehashed = audit_hash(&row);
    db.exec(&format!(
        "UPDATE audit_log SET hash = '{rehashed}' WHERE seq = 4"
    ))
    .await;
    let bad = store.verify_audit().await.expect("verify rehashed");
    let broken = bad.first_broken.expect("rewrite detected");
    assert_eq!((broken.seq, broken.kind), (5, AuditBreakKind::Unlinked));
    store.close().await;
}

async fn audit_chain_detects_a_deleted_row(db: &TestDb) {
    let store = db.store().await;
    fill_log(&store, 3).await;
    db.exec("DELETE FROM audit_log WHERE seq = 3").await;
    let bad = store.verify_audit().await.expect("verify");
    let broken = bad.first_broken.expect("deletion detected");
    assert_eq!((broken.seq, broken.kind), (3, AuditBreakKind::Gap));
    assert!(broken.message.contains("deleted"), "{}", broken.message);

    db.exec("DELETE FROM audit_log WHERE seq = 1").await;
    let broken = store
        .verify_audit()
        .await
        .expect("verify")
        .first_broken
        .expect("deleted first row detected");
    assert_eq!((broken.seq, broken.kind), (1, AuditBreakKind::Gap));
    store.close().await;
}

async fn concurrent_writers_keep_the_chain_gap_free(db: &TestDb) {
    // Two stores (two pools, as two processes would have) and several tasks each.
    let a = db.store().await;
    let b = db.store().await;
    const TASKS: usize = 4;
    const PER_TASK: usize = 12;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        for (name, store) in [("a", a.clone()), ("b", b.clone())] {
            handles.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let id = format!("{name}-{t}-{i}");
                    let ev = archived(
                        event(
                            "dysart",
                            "/dysart/permitting",
                            &id,
                            "ca.haliburton.permitting.permit.issued",
                            None,
                        ),
                        i as i64,
                    );
                    assert!(
                        store
                            .archive(&ev, &["county.x".into()])
                            .await
                            .expect("archive")
                    );
                    let mut att = attempt(&id, 1, AttemptStatus::Delivered, i as i64);
                    att.event_id = id.clone();
                    store.record_attempt(&att).await.expect("record attempt");
                    // Every writer also re-archives a shared event: exactly one wins.
                    let shared = archived(
                        event(
                            "dysart",
                            "/dysart/permitting",
                            &format!("shared-{i}"),
                            "ca.haliburton.permitting.permit.issued",
                            None,
                        ),
                        i as i64,
                    );
                    store.archive(&shared, &[]).await.expect("archive shared");
                }
            }));
        }
    }
    for h in handles {
        h.await.expect("writer task");
    }
    let writers = TASKS * 2;
    let expected_events = writers * PER_TASK + PER_TASK;
    assert_eq!(
        a.count_events(None).await.expect("count"),
        expected_events as u64
    );
    let expected_entries = (writers * PER_TASK * 3 + PER_TASK * 2) as u64;
    let v = b.verify_audit().await.expect("verify");
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.checked, expected_entries);
    assert_eq!(v.last_seq, expected_entries as i64);
    let seqs: BTreeSet<i64> = a
        .audit_entries(0, 10_000)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, (1..=expected_entries as i64).collect());
    a.close().await;
    b.close().await;
}

async fn migrations_are_idempotent(db: &TestDb) {
    // Two processes starting at once on a fresh database.
    let (a, b) = tokio::join!(SqlStore::connect(&db.url), SqlStore::connect(&db.url));
    let a = a.expect("first concurrent start");
    let b = b.expect("second concurrent start");
    fill_log(&a, 1).await;
    a.close().await;
    b.close().await;
    if db.backend == Backend::Sqlite {
        assert_eq!(db.query_text("PRAGMA journal_mode").await, "wal");
    }
    // And again, one after the other: nothing is re-applied, nothing lost.
    for _ in 0..2 {
        let store = db.store().await;
        assert_eq!(store.count_events(None).await.expect("count"), 1);
        assert!(store.verify_audit().await.expect("verify").is_intact());
        store.close().await;
    }
}

async fn corrupt_rows_are_errors_naming_the_row(db: &TestDb) {
    let store = db.store().await;
    fill_log(&store, 1).await;
    db.exec("UPDATE events SET structured = '{not json' WHERE id = 'A0'")
        .await;
    let err = store
        .get_event("dysart", "/dysart/permitting", "A0")
        .await
        .expect_err("corrupt row");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    assert!(
        err.message.contains("events") && err.message.contains("id=A0"),
        "{}",
        err.message
    );
    db.exec("UPDATE audit_log SET at = 9223372036854775807 WHERE seq = 1")
        .await;
    let err = store.audit_entries(0, 10).await.expect_err("bad timestamp");
    assert!(err.message.contains("seq=1"), "{}", err.message);
    store.close().await;
}

async fn closed_store_is_unavailable(db: &TestDb) {
    let store = db.store().await;
    store.close().await;
    let err = store.count_events(None).await.expect_err("closed");
    assert_eq!(err.kind, PortErrorKind::Unavailable, "{}", err.message);
}

// ---------------------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------------------

/// Every `received` entry is followed by its event's `routed` entry: one archive's
/// entries are never interleaved with another write's.
fn assert_archive_entries_adjacent(log: &[civicbus_core::ports::AuditRecord]) {
    for (i, entry) in log.iter().enumerate() {
        if entry.action == "received" {
            let next = log.get(i + 1).expect("routed follows received");
            assert_eq!(next.action, "routed", "after seq {}", entry.seq);
            assert_eq!(next.target, entry.target, "after seq {}", entry.seq);
            assert_eq!(next.prev_hash, entry.hash);
        }
    }
}

async fn burst_of_concurrent_writes_commits_all_with_a_linear_chain(db: &TestDb) {
    // Two stores (two writers, as two processes would have): one with the defaults, one
    // with a tiny batch and queue so writers wait for room and batches are cut short.
    let a = db.store().await;
    let b = SqlStore::connect_with(
        &db.url,
        StoreOptions {
            write_batch: 8,
            write_queue: 4,
            ..StoreOptions::default()
        },
    )
    .await
    .expect("connect with small batches");
    const EVENTS: usize = 250;
    const DUPLICATES: usize = 20;
    let mut handles = Vec::new();
    for i in 0..EVENTS {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = format!("burst-{i}");
        handles.push(tokio::spawn(async move {
            let ev = archived(
                event(
                    "dysart",
                    "/dysart/permitting",
                    &id,
                    "ca.haliburton.permitting.permit.issued",
                    None,
                ),
                i as i64,
            );
            store.archive(&ev, &["county.x".into()]).await
        }));
    }
    for i in 0..EVENTS {
        let store = if i % 2 == 0 { b.clone() } else { a.clone() };
        handles.push(tokio::spawn(async move {
            let mut att = attempt(&format!("key-{i}"), 1, AttemptStatus::Delivered, i as i64);
            att.event_id = format!("burst-{i}");
            store.record_attempt(&att).await.map(|()| true)
        }));
    }
    // The same event archived by many writers at once: exactly one stores it.
    let mut duplicate_handles = Vec::new();
    for i in 0..DUPLICATES {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        duplicate_handles.push(tokio::spawn(async move {
            let ev = archived(
                event(
                    "dysart",
                    "/dysart/permitting",
                    "burst-dup",
                    "ca.haliburton.permitting.permit.issued",
                    None,
                ),
                0,
            );
            store.archive(&ev, &[]).await
        }));
    }
    for h in handles {
        assert!(
            h.await.expect("writer task").expect("write"),
            "newly stored"
        );
    }
    let mut stored = 0;
    for h in duplicate_handles {
        if h.await.expect("writer task").expect("archive duplicate") {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "one archive of the duplicate stores it");

    assert_eq!(
        a.count_events(None).await.expect("count"),
        (EVENTS + 1) as u64
    );
    let expected_entries = (EVENTS + 1) * 2 + EVENTS;
    let v = b.verify_audit().await.expect("verify");
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.checked, expected_entries as u64);
    let log = a.audit_entries(0, 10_000).await.expect("audit");
    assert_eq!(
        log.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=expected_entries as i64).collect::<Vec<_>>()
    );
    assert_archive_entries_adjacent(&log);
    for i in [0, EVENTS / 2, EVENTS - 1] {
        let attempts = a
            .attempts_for_event("dysart", "/dysart/permitting", &format!("burst-{i}"))
            .await
            .expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert!(
            a.is_delivered(&format!("key-{i}"))
                .await
                .expect("delivered")
        );
    }
    a.close().await;
    b.close().await;
}

async fn large_and_small_writes_share_one_linear_chain(db: &TestDb) {
    // On PostgreSQL a write larger than 8 KiB runs in a transaction of its own, beside
    // the writer's batches; the chain must stay one line either way.
    let store = db.store().await;
    let mut handles = Vec::new();
    for i in 0..60usize {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut ev = event(
                "dysart",
                "/dysart/permitting",
                &format!("mixed-{i}"),
                "ca.haliburton.permitting.permit.issued",
                None,
            );
            if i % 3 == 0 {
                ev.data = Some(Data::Json(json!({ "scan": "x".repeat(20_000 + i) })));
            }
            let ev = archived(ev, i as i64);
            assert!(
                store
                    .archive(&ev, &["county.x".into()])
                    .await
                    .expect("archive")
            );
            let mut att = attempt(&format!("mixed-{i}"), 1, AttemptStatus::Terminal, 0);
            att.event_id = format!("mixed-{i}");
            if i % 5 == 0 {
                att.error = Some("e".repeat(12_000));
            }
            store.record_attempt(&att).await.expect("attempt");
            ev
        }));
    }
    for h in handles {
        let ev = h.await.expect("writer task");
        let back = store
            .get_event("dysart", "/dysart/permitting", &ev.event.id)
            .await
            .expect("get")
            .expect("archived");
        assert_eq!(back, ev);
    }
    let log = store.audit_entries(0, 1_000).await.expect("audit");
    assert_eq!(log.len(), 60 * 3);
    assert_archive_entries_adjacent(&log);
    let v = store.verify_audit().await.expect("verify");
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, 180);
    store.close().await;
}

/// Holds the audit lock from outside the store (as another process would), so the
/// store's writer queues everything sent meanwhile into its next batch.
struct OutsideLock {
    conn: sqlx::AnyConnection,
    backend: Backend,
}

impl OutsideLock {
    async fn take(db: &TestDb) -> OutsideLock {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db.url)
            .await
            .expect("raw connection");
        let sql = match db.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE".to_string(),
            Backend::Postgres => format!(
                "SELECT pg_advisory_lock({})",
                civicbus_store::audit::AUDIT_LOCK_KEY
            ),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("take the lock");
        OutsideLock {
            conn,
            backend: db.backend,
        }
    }

    async fn release(mut self) {
        let sql = match self.backend {
            Backend::Sqlite => "COMMIT".to_string(),
            Backend::Postgres => format!(
                "SELECT pg_advisory_unlock({})",
                civicbus_store::audit::AUDIT_LOCK_KEY
            ),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut self.conn)
            .await
            .expect("release the lock");
        let _ = self.conn.close().await;
    }
}

async fn a_failing_write_fails_alone_in_its_batch(db: &TestDb) {
    let store = db.store().await;
    // The database refuses one particular attempt (a constraint the store cannot see
    // coming), like a constraint violation would.
    match db.backend {
        Backend::Sqlite => {
            db.exec(
                "CREATE TRIGGER poison BEFORE INSERT ON delivery_attempts \
                 WHEN NEW.idempotency_key = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned attempt refused'); END",
            )
            .await
        }
        Backend::Postgres => {
            db.exec(
                "ALTER TABLE delivery_attempts ADD CONSTRAINT poisoned_attempt_refused \
                 CHECK (idempotency_key <> 'poison')",
            )
            .await
        }
    }

    let lock = OutsideLock::take(db).await;
    // The first write takes the writer's attention (it waits for the lock) ...
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            let ev = archived(
                event("dysart", "/dysart/permitting", "first", "ca.x.issued", None),
                0,
            );
            store.archive(&ev, &[]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... so these all queue up for the next batch: good writes, the poisoned one, a
    // duplicate pair, and a write refused before it reaches the database.
    let mut good = Vec::new();
    for i in 0..10 {
        let s = store.clone();
        good.push(tokio::spawn(async move {
            let ev = archived(
                event(
                    "dysart",
                    "/dysart/permitting",
                    &format!("good-{i}"),
                    "ca.x.issued",
                    None,
                ),
                i,
            );
            s.archive(&ev, &["county.x".into()]).await?;
            Ok::<_, civicbus_core::ports::PortError>(())
        }));
        let s = store.clone();
        good.push(tokio::spawn(async move {
            let mut att = attempt(&format!("ok-{i}"), 1, AttemptStatus::Retryable, i);
            att.event_id = format!("good-{i}");
            s.record_attempt(&att).await
        }));
        if i == 4 {
            let s = store.clone();
            good.push(tokio::spawn(async move {
                let mut poisoned = attempt("poison", 1, AttemptStatus::Delivered, 0);
                poisoned.event_id = "good-4".into();
                match s.record_attempt(&poisoned).await {
                    Ok(()) => panic!("the poisoned attempt was stored"),
                    Err(e) => {
                        assert_eq!(e.kind, PortErrorKind::Rejected, "{}", e.message);
                        assert!(e.message.contains("poison"), "{}", e.message);
                        Ok(())
                    }
                }
            }));
        }
    }
    let mut duplicates = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        duplicates.push(tokio::spawn(async move {
            let ev = archived(
                event("dysart", "/dysart/permitting", "twice", "ca.x.issued", None),
                0,
            );
            store.archive(&ev, &[]).await
        }));
    }
    let mismatched = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut ev = archived(
                event("dysart", "/dysart/permitting", "wrong", "ca.x.issued", None),
                0,
            );
            ev.tenant = "minden".into();
            store.archive(&ev, &[]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;

    assert!(first.await.expect("task").expect("first archive"));
    for h in good {
        h.await.expect("task").expect("good write");
    }
    let mut stored = Vec::new();
    for h in duplicates {
        stored.push(h.await.expect("task").expect("duplicate archive"));
    }
    stored.sort();
    assert_eq!(
        stored,
        [false, true],
        "the second archive of one event is a no-op"
    );
    let err = mismatched
        .await
        .expect("task")
        .expect_err("tenant mismatch");
    assert_eq!(err.kind, PortErrorKind::Rejected);

    // 12 events (first, good-0..9, twice), 10 attempts; nothing of the poisoned one.
    assert_eq!(store.count_events(None).await.expect("count"), 12);
    assert!(!store.is_delivered("poison").await.expect("is_delivered"));
    let attempts = store
        .attempts_for_event("dysart", "/dysart/permitting", "good-4")
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1);
    let log = store.audit_entries(0, 1_000).await.expect("audit");
    assert_eq!(log.len(), 12 * 2 + 10);
    assert!(log.iter().all(|r| !r.detail.contains("poison")));
    assert_archive_entries_adjacent(&log);
    let v = store.verify_audit().await.expect("verify");
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, log.len() as i64);

    // Alone in its batch, the refused write fails just the same.
    let mut poisoned = attempt("poison", 2, AttemptStatus::Delivered, 0);
    poisoned.event_id = "good-4".into();
    let err = store
        .record_attempt(&poisoned)
        .await
        .expect_err("poisoned attempt");
    assert_eq!(err.kind, PortErrorKind::Rejected, "{}", err.message);
    assert!(
        err.message.contains("recording a delivery attempt"),
        "{}",
        err.message
    );
    assert!(store.verify_audit().await.expect("verify").is_intact());
    store.close().await;
}

async fn writes_after_close_are_unavailable(db: &TestDb) {
    let store = db.store().await;
    let clone = store.clone();
    // Writes in flight when close() is called are applied or refused, never lost
    // silently and never left waiting.
    let mut in_flight = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        in_flight.push(tokio::spawn(async move {
            let ev = archived(
                event(
                    "dysart",
                    "/dysart/permitting",
                    &format!("c-{i}"),
                    "ca.x.issued",
                    None,
                ),
                i,
            );
            store.archive(&ev, &[]).await
        }));
    }
    tokio::task::yield_now().await;
    tokio::time::timeout(Duration::from_secs(30), store.close())
        .await
        .expect("close drains the writer");
    let mut applied = 0u64;
    for h in in_flight {
        match tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .expect("no write hangs")
            .expect("task")
        {
            Ok(stored) => {
                assert!(stored);
                applied += 1;
            }
            Err(e) => assert_eq!(e.kind, PortErrorKind::Unavailable, "{}", e.message),
        }
    }

    let ev = archived(
        event("dysart", "/dysart/permitting", "late", "ca.x.issued", None),
        0,
    );
    for s in [&store, &clone] {
        let err = s.archive(&ev, &[]).await.expect_err("archive after close");
        assert_eq!(err.kind, PortErrorKind::Unavailable, "{}", err.message);
        assert!(err.message.contains("closed"), "{}", err.message);
        let err = s
            .record_attempt(&attempt("k", 1, AttemptStatus::Delivered, 0))
            .await
            .expect_err("attempt after close");
        assert_eq!(err.kind, PortErrorKind::Unavailable, "{}", err.message);
        let record = QuarantineRecord {
            id: "q-late".into(),
            tenant: None,
            transport: "http".into(),
            reason_kind: "malformed-json".into(),
            field: String::new(),
            reason: "late".into(),
            body: Vec::new(),
            headers: Vec::new(),
            received_at: at(0),
        };
        let err = s
            .quarantine(&record)
            .await
            .expect_err("quarantine after close");
        assert_eq!(err.kind, PortErrorKind::Unavailable, "{}", err.message);
        let err = s
            .archive_event(&ev, &[])
            .await
            .expect_err("inherent archive after close");
        assert!(matches!(err, StoreError::Closed { .. }), "{err}");
        assert!(err.is_unavailable());
    }
    // Closing again is harmless.
    clone.close().await;

    // What was acknowledged was committed.
    let reopened = db.store().await;
    assert_eq!(reopened.count_events(None).await.expect("count"), applied);
    assert!(reopened.verify_audit().await.expect("verify").is_intact());
    reopened.close().await;
}

#[test]
fn a_dead_writer_means_unavailable_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let first = tokio::runtime::Runtime::new().expect("runtime");
    let store = first.block_on(SqlStore::connect(&url)).expect("connect");
    // The writer task lives on the first runtime; shutting it down kills the task.
    drop(first);
    let second = tokio::runtime::Runtime::new().expect("runtime");
    second.block_on(async {
        let ev = archived(
            event(
                "dysart",
                "/dysart/permitting",
                "orphan",
                "ca.x.issued",
                None,
            ),
            0,
        );
        let err = tokio::time::timeout(Duration::from_secs(10), store.archive(&ev, &[]))
            .await
            .expect("no hang")
            .expect_err("no writer");
        assert_eq!(err.kind, PortErrorKind::Unavailable, "{}", err.message);
        assert!(err.message.contains("writer"), "{}", err.message);
    });
}

// ---------------------------------------------------------------------------------------
// Connection errors (no database needed)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_postgres_says_what_to_do_without_the_password() {
    let err = SqlStore::connect("postgres://civicbus:hunter2secret@127.0.0.1:1/civicbus")
        .await
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(err.is_unavailable(), "{msg}");
    assert!(matches!(err, StoreError::Connect { .. }), "{msg}");
    assert!(msg.contains("PostgreSQL"), "{msg}");
    assert!(msg.contains("127.0.0.1:1/civicbus"), "{msg}");
    assert!(msg.contains("CIVICBUS_STORE_URL"), "{msg}");
    assert!(!msg.contains("hunter2secret"), "{msg}");
}

#[tokio::test]
async fn missing_postgres_database_is_named() {
    let admin = pg_admin_url();
    let (base, _) = admin.rsplit_once('/').expect("admin URL names a database");
    let url = format!("{base}/civicbus_no_such_db?password=topsecret");
    let err = SqlStore::connect(&url).await.expect_err("no such database");
    let msg = err.to_string();
    assert!(msg.contains("civicbus_no_such_db"), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(!msg.contains("topsecret"), "{msg}");
}

#[tokio::test]
async fn unopenable_sqlite_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}",
        dir.path().join("missing-dir").join("c.db").display()
    );
    let err = SqlStore::connect(&url)
        .await
        .expect_err("no such directory");
    let msg = err.to_string();
    assert!(msg.contains("SQLite"), "{msg}");
    assert!(msg.contains("missing-dir"), "{msg}");
    assert!(msg.contains("CIVICBUS_STORE_URL"), "{msg}");
}

#[tokio::test]
async fn unsupported_scheme_is_refused() {
    let err = SqlStore::connect("mysql://root:pw@localhost/x")
        .await
        .expect_err("mysql is not supported");
    let msg = err.to_string();
    assert!(
        msg.contains("sqlite://") && msg.contains("postgres://"),
        "{msg}"
    );
    assert!(!msg.contains(":pw@"), "{msg}");
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = SqlStore::connect("sqlite::memory:").await.expect("memory");
    fill_log(&store, 2).await;
    assert_eq!(store.count_events(None).await.expect("count"), 2);
    assert!(store.verify_audit().await.expect("verify").is_intact());
}

// ---------------------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------------------

/// A dead letter of `key` for `subscription` (of tenant `county`), created at `at(created_s)`.
fn dead_letter(id: &str, key: &str, subscription: &str, created_s: i64) -> DeadLetter {
    DeadLetter {
        id: id.into(),
        tenant: "county".into(),
        subscription: subscription.into(),
        idempotency_key: key.into(),
        event: event(
            "dysart",
            "/dysart/permitting",
            &format!("ev-{key}"),
            "ca.haliburton.permitting.permit.issued",
            Some("BP-2026-0001"),
        ),
        event_tenant: "dysart".into(),
        reason: DeadLetterReason::AttemptsExhausted,
        error: "HTTP 503 from subscriber".into(),
        last_response_code: Some(503),
        attempts: 8,
        received_at: Some(at(0)),
        created_at: at(created_s),
    }
}

async fn dead_letter_round_trip_idempotence_and_audit(db: &TestDb) {
    let store = db.store().await;
    // Every field set, and an error longer than the audit keeps.
    let mut full = dead_letter(
        "0190b6d2-0000-7000-8000-0000000000d1",
        "key-full",
        "county.records-filing",
        10,
    );
    full.reason = DeadLetterReason::Terminal;
    full.last_response_code = Some(422);
    full.error = format!("HTTP 422: {}", "é".repeat(600));
    full.attempts = 1;
    full.event.extensions.insert(
        "traceparent".into(),
        ExtensionValue::String("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    );
    full.event
        .extensions
        .insert("partitionkey".into(), ExtensionValue::String("BP-7".into()));
    // Binary data, and every optional field empty.
    let mut ev = CloudEvent::new(
        "scan-1",
        "/minden/records",
        "ca.haliburton.records.scan.filed",
    )
    .expect("valid event");
    ev.datacontenttype = Some("application/pdf".into());
    ev.data = Some(Data::Binary(vec![0u8, 159, 255, 1, b'%', b'P'].into()));
    ev.set_tenant("minden");
    let bare = DeadLetter {
        id: "0190b6d2-0000-7000-8000-0000000000d2".into(),
        tenant: "minden".into(),
        subscription: "minden.archive".into(),
        idempotency_key: "key-bare".into(),
        event: ev,
        event_tenant: "minden".into(),
        reason: DeadLetterReason::Gone,
        error: String::new(),
        last_response_code: None,
        attempts: 0,
        received_at: None,
        created_at: at(20),
    };

    store.dead_letter(&full).await.expect("dead letter full");
    store.dead_letter(&bare).await.expect("dead letter bare");
    assert_eq!(
        store.get_dead_letter(&full.id).await.expect("get"),
        Some(full.clone())
    );
    assert_eq!(
        store.get_dead_letter(&bare.id).await.expect("get"),
        Some(bare.clone())
    );
    assert_eq!(
        store.get_dead_letter("nope").await.expect("get missing"),
        None
    );

    // The same delivery dead-lettered again (redelivery after a crash), under a new
    // record id: nothing new is stored or audited, and it is not an error.
    let mut again = full.clone();
    again.id = "0190b6d2-0000-7000-8000-0000000000d3".into();
    again.created_at = at(30);
    again.error = "second time".into();
    store.dead_letter(&again).await.expect("dead letter again");
    assert!(
        !store
            .record_dead_letter(&again)
            .await
            .expect("inherent dead letter again"),
        "an existing key stores nothing"
    );
    assert_eq!(store.get_dead_letter(&again.id).await.expect("get"), None);
    let all = store
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .expect("list");
    assert_eq!(all, vec![bare.clone(), full.clone()], "newest first");

    let log = store.audit_entries(0, 0).await.expect("audit");
    assert_eq!(log.len(), 2, "one entry per stored dead letter: {log:?}");
    let entry = &log[0];
    assert_eq!(entry.action, "dead-lettered");
    assert_eq!(entry.actor, "civicbus");
    assert_eq!(entry.tenant.as_deref(), Some("county"));
    assert_eq!(entry.target, format!("dead-letter:{}", full.id));
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).expect("detail is JSON");
    let error = detail["error"].as_str().expect("error is text").to_string();
    assert_eq!(
        error.chars().count(),
        257,
        "cut to 256 characters and an ellipsis"
    );
    assert!(
        error.starts_with("HTTP 422: éé") && error.ends_with('…'),
        "{error}"
    );
    assert_eq!(
        detail,
        json!({
            "subscription": "county.records-filing",
            "idempotency_key": "key-full",
            "event_tenant": "dysart",
            "event_source": "/dysart/permitting",
            "event_id": "ev-key-full",
            "reason": "terminal",
            "attempts": 1,
            "last_response_code": 422,
            "error": error,
        })
    );
    let bare_detail: serde_json::Value = serde_json::from_str(&log[1].detail).expect("JSON");
    assert_eq!(bare_detail["reason"], "gone");
    assert_eq!(bare_detail["last_response_code"], serde_json::Value::Null);
    assert_eq!(log[1].tenant.as_deref(), Some("minden"));
    for entry in &log {
        assert!(
            !entry.detail.contains("BP-2026-0001")
                && !entry.detail.contains("125.5")
                && !entry.detail.contains("data"),
            "audit detail must not carry the payload: {}",
            entry.detail
        );
    }
    let v = store.verify_audit().await.expect("verify");
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, 2);

    // A row that cannot be decoded is an error naming it, not a panic or a skip.
    db.exec(&format!(
        "UPDATE dead_letters SET reason = 'bogus' WHERE id = '{}'",
        bare.id
    ))
    .await;
    let err = store
        .get_dead_letter(&bare.id)
        .await
        .expect_err("corrupt row");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    assert!(
        err.message.contains("dead_letters") && err.message.contains(&bare.id),
        "{}",
        err.message
    );
    store.close().await;
}

async fn dead_letters_list_filters_and_order(db: &TestDb) {
    let store = db.store().await;
    let rows = [
        (
            "d1",
            "county",
            "county.records-filing",
            DeadLetterReason::Terminal,
            10,
        ),
        (
            "d2",
            "county",
            "county.gis-link",
            DeadLetterReason::AttemptsExhausted,
            40,
        ),
        ("d3", "minden", "minden.archive", DeadLetterReason::Gone, 30),
        (
            "d4",
            "county",
            "county.records-filing",
            DeadLetterReason::AttemptsExhausted,
            20,
        ),
        (
            "d5",
            "minden",
            "minden.archive",
            DeadLetterReason::MaxAgeExceeded,
            50,
        ),
    ];
    // Stored out of time order: the list orders by created_at, not by insertion.
    for (id, tenant, subscription, reason, t) in rows {
        let mut d = dead_letter(id, &format!("key-{id}"), subscription, t);
        d.tenant = tenant.into();
        d.reason = reason;
        store.dead_letter(&d).await.expect("dead letter");
    }
    let list = |q: DeadLetterQuery| {
        let store = store.clone();
        async move {
            store
                .list_dead_letters(&q)
                .await
                .expect("list")
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(DeadLetterQuery::default()).await,
        ["d5", "d2", "d3", "d4", "d1"],
        "newest first"
    );
    assert_eq!(
        list(DeadLetterQuery {
            tenant: Some("county".into()),
            ..Default::default()
        })
        .await,
        ["d2", "d4", "d1"]
    );
    assert_eq!(
        list(DeadLetterQuery {
            subscription: Some("county.records-filing".into()),
            ..Default::default()
        })
        .await,
        ["d4", "d1"]
    );
    assert_eq!(
        list(DeadLetterQuery {
            reason: Some(DeadLetterReason::AttemptsExhausted),
            ..Default::default()
        })
        .await,
        ["d2", "d4"]
    );
    assert_eq!(
        list(DeadLetterQuery {
            tenant: Some("county".into()),
            subscription: Some("county.records-filing".into()),
            reason: Some(DeadLetterReason::AttemptsExhausted),
            limit: 0,
        })
        .await,
        ["d4"]
    );
    assert!(
        list(DeadLetterQuery {
            tenant: Some("minden".into()),
            subscription: Some("county.gis-link".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(DeadLetterQuery {
            limit: 2,
            ..Default::default()
        })
        .await,
        ["d5", "d2"]
    );
    assert_eq!(
        list(DeadLetterQuery {
            tenant: Some("minden".into()),
            limit: 1,
            ..Default::default()
        })
        .await,
        ["d5"]
    );
    store.close().await;
}

async fn dead_letters_share_a_batch_with_other_writes(db: &TestDb) {
    let store = db.store().await;
    let lock = OutsideLock::take(db).await;
    // The first write takes the writer's attention (it waits for the lock) ...
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            let ev = archived(
                event("dysart", "/dysart/permitting", "first", "ca.x.issued", None),
                0,
            );
            store.archive(&ev, &["county.records-filing".into()]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... so these queue up for one batch: archives, attempts, quarantine, dead letters
    // (one with an event over 8 KiB, which PostgreSQL writes beside the batch), and the
    // same dead letter twice.
    let mut writes = Vec::new();
    for i in 0..6i64 {
        let s = store.clone();
        writes.push(tokio::spawn(async move {
            let ev = archived(
                event(
                    "dysart",
                    "/dysart/permitting",
                    &format!("b-{i}"),
                    "ca.x.issued",
                    None,
                ),
                i,
            );
            s.archive(&ev, &["county.records-filing".into()])
                .await
                .map(|_| ())
        }));
        let s = store.clone();
        writes.push(tokio::spawn(async move {
            let mut att = attempt(&format!("key-b-{i}"), 8, AttemptStatus::Retryable, i);
            att.event_id = format!("b-{i}");
            s.record_attempt(&att).await
        }));
        let s = store.clone();
        writes.push(tokio::spawn(async move {
            let mut d = dead_letter(
                &format!("dl-{i}"),
                &format!("key-b-{i}"),
                "county.records-filing",
                i,
            );
            if i == 3 {
                d.event.data = Some(Data::Json(json!({ "scan": "x".repeat(20_000) })));
            }
            s.dead_letter(&d).await
        }));
    }
    {
        let s = store.clone();
        writes.push(tokio::spawn(async move {
            let record = QuarantineRecord {
                id: "q-batch".into(),
                tenant: Some("dysart".into()),
                transport: "amqp".into(),
                reason_kind: "malformed-json".into(),
                field: String::new(),
                reason: "expected value at line 1".into(),
                body: b"{".to_vec(),
                headers: Vec::new(),
                received_at: at(0),
            };
            s.quarantine(&record).await
        }));
    }
    let mut twins = Vec::new();
    for n in 0..2 {
        let s = store.clone();
        twins.push(tokio::spawn(async move {
            let d = dead_letter(&format!("twin-{n}"), "key-twin", "county.gis-link", 100);
            s.record_dead_letter(&d).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;

    assert!(first.await.expect("task").expect("first archive"));
    for h in writes {
        h.await.expect("task").expect("write in the batch");
    }
    let mut stored = Vec::new();
    for h in twins {
        stored.push(h.await.expect("task").expect("twin dead letter"));
    }
    stored.sort();
    assert_eq!(stored, [false, true], "one dead letter per idempotency key");

    let all = store
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].idempotency_key, "key-twin");
    let big = store
        .get_dead_letter("dl-3")
        .await
        .expect("get")
        .expect("the large dead letter");
    assert_eq!(
        big.event.data,
        Some(Data::Json(json!({ "scan": "x".repeat(20_000) })))
    );

    let log = store.audit_entries(0, 1_000).await.expect("audit");
    // first + 6 archives (2 each), 6 attempts, 1 quarantine, 7 dead letters.
    assert_eq!(log.len(), 7 * 2 + 6 + 1 + 7, "{log:#?}");
    assert_archive_entries_adjacent(&log);
    let dead: Vec<String> = log
        .iter()
        .filter(|r| r.action == "dead-lettered")
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(dead.len(), 7);
    assert_eq!(
        dead.iter().collect::<BTreeSet<_>>().len(),
        7,
        "each dead letter audited once"
    );
    let v = store.verify_audit().await.expect("verify");
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, log.len() as i64);
    store.close().await;
}

async fn endpoint_failing_disable_notify_enable_and_audit(db: &TestDb) {
    let store = db.store().await;
    let key = "county.records-filing";
    assert_eq!(store.endpoint_state(key).await.expect("read"), None);
    // Answering before anything failed is harmless.
    store.endpoint_answered(key).await.expect("answered");

    // The run of failures starts at the first failure and is not moved by later ones.
    let since = store
        .endpoint_failing(key, "county", at(0))
        .await
        .expect("failing");
    assert_eq!(since, at(0));
    let again = store
        .endpoint_failing(key, "county", at(60))
        .await
        .expect("failing again");
    assert_eq!(again, at(0));
    let state = store.endpoint_state(key).await.expect("read").expect("row");
    assert_eq!(state.failing_since, Some(at(0)));
    assert_eq!(state.tenant, "county");
    assert_eq!(state.disabled, None);

    // An answer ends the run; the next failure starts a new one.
    store.endpoint_answered(key).await.expect("answered");
    let state = store.endpoint_state(key).await.expect("read").expect("row");
    assert_eq!(state.failing_since, None);
    let since = store
        .endpoint_failing(key, "county", at(100))
        .await
        .expect("failing");
    assert_eq!(since, at(100));

    // Disabling is audited once; a second disable changes nothing.
    let request = DisableEndpoint {
        subscription: key.into(),
        tenant: "county".into(),
        reason: DisableReason::Failing,
        error: "connection refused (secret=never-here)".into(),
        response_code: None,
        failing_since: Some(at(100)),
        at: at(200),
    };
    assert!(store.disable_endpoint(&request).await.expect("disable"));
    assert!(
        !store
            .disable_endpoint(&request)
            .await
            .expect("disable again")
    );
    let state = store.endpoint_state(key).await.expect("read").expect("row");
    let disabled = state.disabled.clone().expect("disabled");
    assert_eq!(disabled.at, at(200));
    assert_eq!(disabled.reason, DisableReason::Failing);
    assert_eq!(disabled.notified_at, None);
    assert_eq!(state.failing_since, Some(at(100)));

    // Gone, for an endpoint never seen before: the row is created disabled.
    let gone = DisableEndpoint {
        subscription: "minden.gis-sync".into(),
        tenant: "minden".into(),
        reason: DisableReason::Gone,
        error: "HTTP 410 from subscriber".into(),
        response_code: Some(410),
        failing_since: None,
        at: at(210),
    };
    assert!(store.disable_endpoint(&gone).await.expect("disable gone"));
    let listed = store.list_endpoints(None).await.expect("list");
    let keys: Vec<&str> = listed.iter().map(|s| s.subscription.as_str()).collect();
    assert_eq!(keys, [key, "minden.gis-sync"]);
    let minden = store.list_endpoints(Some("minden")).await.expect("list");
    assert_eq!(minden.len(), 1);
    let d = minden[0].disabled.clone().expect("disabled");
    assert_eq!(
        (d.reason, d.response_code),
        (DisableReason::Gone, Some(410))
    );

    // Notified only for the disabling it names.
    store
        .endpoint_notified(key, at(199), at(201))
        .await
        .expect("notified other");
    let state = store.endpoint_state(key).await.expect("read").expect("row");
    assert_eq!(state.disabled.expect("disabled").notified_at, None);
    store
        .endpoint_notified(key, at(200), at(201))
        .await
        .expect("notified");
    let state = store.endpoint_state(key).await.expect("read").expect("row");
    assert_eq!(state.disabled.expect("disabled").notified_at, Some(at(201)));

    // Enabling clears the run and is audited once, with the operator as actor.
    assert!(
        store
            .enable_endpoint(key, "operator:alice")
            .await
            .expect("enable")
    );
    assert!(
        !store
            .enable_endpoint(key, "operator:alice")
            .await
            .expect("enable again")
    );
    assert!(
        !store
            .enable_endpoint("nobody.never", "operator:alice")
            .await
            .expect("enable unknown")
    );
    let state = store.endpoint_state(key).await.expect("read").expect("row");
    assert_eq!((state.disabled, state.failing_since), (None, None));

    let log = store.audit_entries(0, 100).await.expect("audit");
    let endpoint_entries: Vec<(&str, &str, &str)> = log
        .iter()
        .filter(|e| e.target.starts_with("endpoint:"))
        .map(|e| (e.action.as_str(), e.target.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        endpoint_entries,
        [
            (
                "endpoint-disabled",
                "endpoint:county.records-filing",
                "civicbus"
            ),
            ("endpoint-disabled", "endpoint:minden.gis-sync", "civicbus"),
            (
                "endpoint-enabled",
                "endpoint:county.records-filing",
                "operator:alice"
            ),
        ]
    );
    let detail: serde_json::Value = serde_json::from_str(
        &log.iter()
            .find(|e| e.action == "endpoint-disabled")
            .expect("entry")
            .detail,
    )
    .expect("json detail");
    assert_eq!(detail["reason"], "failing");
    assert_eq!(detail["subscription"], key);
    assert!(store.verify_audit().await.expect("verify").is_intact());
}

fn parked(sub: &str, key: &str, id: &str, body: &[u8]) -> ParkedDelivery {
    ParkedDelivery {
        subscription: sub.into(),
        ordering_key: key.into(),
        idempotency_key: id.into(),
        message: OutboundMessage {
            body: body.to_vec().into(),
            content_type: "application/cloudevents+json".into(),
            headers: vec![
                ("x-civicbus-attempt".into(), "1".into()),
                ("cloudEvents_subject".into(), key.into()),
            ],
            message_id: Some(format!("m-{id}")),
        },
        parked_at: at(5),
    }
}

async fn ordering_heads_and_parked_deliveries_in_order(db: &TestDb) {
    let store = db.store().await;
    let sub = "dysart.finance";
    assert_eq!(store.ordering_head(sub, "BP-1").await.expect("head"), None);
    store
        .set_ordering_head(sub, "BP-1", "k1")
        .await
        .expect("set");
    assert_eq!(
        store
            .ordering_head(sub, "BP-1")
            .await
            .expect("head")
            .as_deref(),
        Some("k1")
    );
    store
        .set_ordering_head(sub, "BP-1", "k2")
        .await
        .expect("replace");
    assert_eq!(
        store
            .ordering_head(sub, "BP-1")
            .await
            .expect("head")
            .as_deref(),
        Some("k2")
    );
    // Clearing names the head it expects.
    store
        .clear_ordering_head(sub, "BP-1", "k1")
        .await
        .expect("clear other");
    assert!(
        store
            .ordering_head(sub, "BP-1")
            .await
            .expect("head")
            .is_some()
    );
    store
        .clear_ordering_head(sub, "BP-1", "k2")
        .await
        .expect("clear");
    assert_eq!(store.ordering_head(sub, "BP-1").await.expect("head"), None);

    // Parked in arrival order, per key; a second park of one delivery is ignored.
    store
        .park(&parked(sub, "BP-1", "k3", b"three"))
        .await
        .expect("park");
    store
        .park(&parked(sub, "BP-2", "k9", b"nine"))
        .await
        .expect("park");
    store
        .park(&parked(sub, "BP-1", "k4", &[0, 255, 1]))
        .await
        .expect("park");
    store
        .park(&parked(sub, "BP-1", "k3", b"again"))
        .await
        .expect("park dup");
    store
        .park(&parked("minden.gis", "BP-1", "k7", b"other"))
        .await
        .expect("park");
    assert_eq!(store.count_parked(Some(sub)).await.expect("count"), 3);
    assert_eq!(store.count_parked(None).await.expect("count"), 4);
    let first = store
        .next_parked(sub, "BP-1")
        .await
        .expect("next")
        .expect("some");
    assert_eq!(first, parked(sub, "BP-1", "k3", b"three"));
    store.unpark("k3").await.expect("unpark");
    store.unpark("k3").await.expect("unpark twice");
    let next = store
        .next_parked(sub, "BP-1")
        .await
        .expect("next")
        .expect("some");
    assert_eq!(next.idempotency_key, "k4");
    assert_eq!(next.message.body.as_ref(), &[0, 255, 1]);
    store.unpark("k4").await.expect("unpark");
    assert_eq!(store.next_parked(sub, "BP-1").await.expect("next"), None);
    // A key parked again after draining starts after nothing.
    store
        .park(&parked(sub, "BP-1", "k5", b"five"))
        .await
        .expect("park");
    assert_eq!(
        store
            .next_parked(sub, "BP-1")
            .await
            .expect("next")
            .map(|p| p.idempotency_key)
            .as_deref(),
        Some("k5")
    );

    assert!(!store.is_dead_lettered("key-x").await.expect("dead?"));
    let mut dl = dead_letter("0190b6d2-0000-7000-8000-0000000000e1", "key-x", sub, 1);
    dl.attempts = 1;
    store.dead_letter(&dl).await.expect("dead letter");
    assert!(store.is_dead_lettered("key-x").await.expect("dead?"));
}

async fn transform_runs_are_kept_once_and_audited(db: &TestDb) {
    use civicbus_core::ports::TransformRecord;
    let store = db.store().await;
    let run = TransformRecord {
        subscription: "county.records-filing".into(),
        tenant: "county".into(),
        input_tenant: "dysart".into(),
        input_source: "/dysart/permitting".into(),
        input_id: "dys-9003".into(),
        plugins: vec!["permit-to-record@sha256:ab12".into()],
        outputs: vec![(
            "/civicbus/transforms/permit-to-record".into(),
            "dys-9003:0".into(),
            "ca.haliburton.records.record.declared".into(),
        )],
        at: at(30),
    };
    store.record_transform(&run).await.expect("record");
    store.record_transform(&run).await.expect("record again");
    let filtered = TransformRecord {
        subscription: "county.finance".into(),
        outputs: vec![],
        ..run.clone()
    };
    store
        .record_transform(&filtered)
        .await
        .expect("record filtered");
    let runs = store
        .transform_runs("dysart", "/dysart/permitting", "dys-9003")
        .await
        .expect("read");
    // Same time: ordered by subscription.
    assert_eq!(runs, vec![filtered, run]);
    let log = store.audit_entries(0, 100).await.expect("audit");
    let transformed: Vec<_> = log.iter().filter(|e| e.action == "transformed").collect();
    assert_eq!(transformed.len(), 2, "audited once per run");
    assert!(
        transformed[0]
            .detail
            .contains("permit-to-record@sha256:ab12")
    );
    assert_eq!(transformed[0].target, "event:/dysart/permitting#dys-9003");
}
