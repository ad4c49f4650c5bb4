//! Endpoint auto-disable: the part of endpoint health that outlives the process.
//!
//! The circuit breaker ([`crate::circuit`]) protects an endpoint from being hammered
//! while it is down; it lives in memory. This module keeps, in the store, when the
//! current run of consecutive failures began, so that an endpoint that has failed
//! continuously for the subscription's [`HealthPolicy::disable_after`] is disabled even
//! across restarts of civicbus, and an endpoint that answers 410 Gone is disabled at once.
//!
//! Disabling is audited (`endpoint-disabled`) and announced with a CloudEvent of type
//! [`ENDPOINT_DISABLED_TYPE`] on the events exchange, in the subscription's tenant, so
//! operators can subscribe to it like to any other event. While an endpoint is disabled,
//! its deliveries are not attempted: each is dead-lettered with reason
//! `endpoint-disabled` (nothing is dropped; enable the endpoint, then replay). An
//! operator enables it again with `civicbus endpoints enable <tenant>.<id>`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use civicbus_core::delivery::{HEADER_ACTOR, HEADER_RECEIVED_AT};
use civicbus_core::ports::{
    Destination, DisableEndpoint, DisableReason, Disabled, EventStore, PortError, Publisher,
    SinkOutcome,
};
use civicbus_core::{CloudEvent, Data, SinkSpec, Subscription, wire};
use serde_json::json;

use crate::circuit::HealthPolicy;

/// Type of the event announcing that an endpoint was disabled.
pub const ENDPOINT_DISABLED_TYPE: &str = "ca.haliburton.civicbus.endpoint.disabled";

/// Source of the events civicbus itself publishes about endpoints.
pub const ENDPOINT_EVENT_SOURCE: &str = "/civicbus/endpoints";

/// How long a worker trusts what it last read of its endpoint's status before reading
/// it again (an operator's `endpoints enable` takes effect within this time).
pub const STATUS_REFRESH: Duration = Duration::from_secs(5);

/// The actor of audit entries and events written by the bus itself.
const BUS_ACTOR: &str = "civicbus";

#[derive(Debug, Default)]
struct View {
    /// What the store holds as the start of the run of failures: `None` not read yet,
    /// `Some(None)` no run, `Some(Some(t))` failing since `t`.
    failing_since: Option<Option<DateTime<Utc>>>,
    /// The status last read, and when.
    status: Option<(Instant, Option<Disabled>)>,
}

/// Why an endpoint is being disabled.
struct Cause {
    reason: DisableReason,
    error: String,
    response_code: Option<u16>,
    failing_since: Option<DateTime<Utc>>,
}

/// The persisted health of one subscription's endpoint, as one delivery worker sees it.
pub struct EndpointHealth {
    subscription: Subscription,
    key: String,
    disable_after: Duration,
    view: Mutex<View>,
    notifying: AtomicBool,
}

impl EndpointHealth {
    /// The health of `subscription`'s endpoint under `policy`.
    pub fn new(subscription: &Subscription, policy: &HealthPolicy) -> Self {
        EndpointHealth {
            key: subscription.key(),
            subscription: subscription.clone(),
            disable_after: policy.disable_after,
            view: Mutex::new(View::default()),
            notifying: AtomicBool::new(false),
        }
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        // A poisoned lock only means a panic elsewhere; the view is only a cache.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the endpoint is disabled (read from the store at most every
    /// [`STATUS_REFRESH`] by the clock `now` comes from). A disabling whose event was not
    /// published yet (the process stopped in between) is announced now.
    pub async fn disabled(
        &self,
        store: &dyn EventStore,
        publisher: &dyn Publisher,
        now: Instant,
    ) -> Result<Option<Disabled>, PortError> {
        let cached = self
            .view()
            .status
            .as_ref()
            .filter(|(read, _)| now.saturating_duration_since(*read) < STATUS_REFRESH)
            .map(|(_, d)| d.clone());
        let status = match cached {
            Some(d) => d,
            None => {
                let state = store.endpoint_state(&self.key).await?;
                let disabled = state.as_ref().and_then(|s| s.disabled.clone());
                let mut view = self.view();
                view.status = Some((now, disabled.clone()));
                if let Some(s) = state {
                    view.failing_since = Some(s.failing_since);
                }
                disabled
            }
        };
        if let Some(d) = &status
            && d.notified_at.is_none()
        {
            self.announce(store, publisher, d).await;
        }
        Ok(status)
    }

    /// The endpoint answered (delivered, or refused for good): it is alive, and the run
    /// of failures, if any, is over.
    pub async fn answered(&self, store: &dyn EventStore) {
        if matches!(self.view().failing_since, Some(None)) {
            return;
        }
        match store.endpoint_answered(&self.key).await {
            Ok(()) => self.view().failing_since = Some(None),
            Err(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "cannot record that the endpoint answered; will try again")
            }
        }
    }

    /// A delivery failed with a retryable outcome. Returns the disabling if the
    /// endpoint has now failed for longer than `disable_after` (and is disabled).
    pub async fn failed(
        &self,
        store: &dyn EventStore,
        publisher: &dyn Publisher,
        outcome: &SinkOutcome,
        clock_now: Instant,
    ) -> Option<Disabled> {
        let now = Utc::now();
        let known = self.view().failing_since;
        let since = match known {
            Some(Some(since)) => since,
            _ => match store
                .endpoint_failing(&self.key, &self.subscription.tenant, now)
                .await
            {
                Ok(since) => {
                    self.view().failing_since = Some(Some(since));
                    since
                }
                Err(e) => {
                    tracing::warn!(subscription = %self.key, error = %e, "cannot record the endpoint's failure; will try again");
                    return None;
                }
            },
        };
        if self.disable_after.is_zero() {
            return None;
        }
        let failing_for = (now - since).to_std().unwrap_or_default();
        if failing_for < self.disable_after {
            return None;
        }
        let error = format!(
            "every delivery failed for {} (since {}); last: {}",
            humantime::format_duration(Duration::from_secs(failing_for.as_secs())),
            since.to_rfc3339_opts(SecondsFormat::Secs, true),
            outcome.error().unwrap_or("no answer")
        );
        let cause = Cause {
            reason: DisableReason::Failing,
            error,
            response_code: outcome.response_code(),
            failing_since: Some(since),
        };
        self.disable(store, publisher, cause, clock_now).await
    }

    /// The endpoint answered 410 Gone: disable it now.
    pub async fn gone(
        &self,
        store: &dyn EventStore,
        publisher: &dyn Publisher,
        outcome: &SinkOutcome,
        now: Instant,
    ) -> Option<Disabled> {
        let since = self.view().failing_since.flatten();
        let error = outcome
            .error()
            .unwrap_or("the endpoint answered 410 Gone")
            .to_string();
        let cause = Cause {
            reason: DisableReason::Gone,
            error,
            response_code: outcome.response_code(),
            failing_since: since,
        };
        self.disable(store, publisher, cause, now).await
    }

    async fn disable(
        &self,
        store: &dyn EventStore,
        publisher: &dyn Publisher,
        cause: Cause,
        now: Instant,
    ) -> Option<Disabled> {
        let reason = cause.reason;
        let request = DisableEndpoint {
            subscription: self.key.clone(),
            tenant: self.subscription.tenant.clone(),
            reason,
            error: cause.error,
            response_code: cause.response_code,
            failing_since: cause.failing_since,
            at: Utc::now(),
        };
        match store.disable_endpoint(&request).await {
            Ok(changed) => {
                if changed {
                    tracing::warn!(
                        subscription = %self.key,
                        reason = reason.as_str(),
                        error = %request.error,
                        "endpoint disabled: its deliveries are dead-lettered until an operator enables it (civicbus endpoints enable {})",
                        self.key
                    );
                }
            }
            Err(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "cannot disable the endpoint; will try again at its next failure");
                return None;
            }
        }
        // Read back what is in force (another worker may have disabled it first).
        self.view().status = None;
        self.disabled(store, publisher, now).await.ok().flatten()
    }

    /// Publish the `endpoint.disabled` event of `disabled` and note it in the store.
    /// Best effort: if either fails, the next read of the status tries again. The event
    /// id is derived from the disabling, so a second announcement is a duplicate the
    /// archive and subscribers recognise.
    async fn announce(&self, store: &dyn EventStore, publisher: &dyn Publisher, d: &Disabled) {
        if self.notifying.swap(true, Ordering::AcqRel) {
            return;
        }
        let result = async {
            let msg = disabled_event(&self.subscription, &self.key, d)?;
            publisher.publish_confirmed(vec![msg]).await?;
            store.endpoint_notified(&self.key, d.at, Utc::now()).await
        }
        .await;
        match result {
            Ok(()) => {
                if let Some((_, Some(cached))) = self.view().status.as_mut() {
                    cached.notified_at = Some(Utc::now());
                }
                tracing::info!(subscription = %self.key, "published {ENDPOINT_DISABLED_TYPE}");
            }
            Err(e) => {
                tracing::warn!(subscription = %self.key, error = %e, "cannot publish {ENDPOINT_DISABLED_TYPE} yet; will try again")
            }
        }
        self.notifying.store(false, Ordering::Release);
    }
}

/// The event announcing a disabling, ready for the events exchange.
fn disabled_event(
    subscription: &Subscription,
    key: &str,
    d: &Disabled,
) -> Result<(Destination, civicbus_core::ports::OutboundMessage), PortError> {
    let at = d.at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut ev = CloudEvent::new(
        format!("{key}@{}", d.at.timestamp_micros()),
        ENDPOINT_EVENT_SOURCE,
        ENDPOINT_DISABLED_TYPE,
    )
    .map_err(|e| PortError::rejected(format!("cannot build the endpoint.disabled event: {e}")))?;
    ev.subject = Some(key.to_string());
    ev.time = Some(at.clone());
    ev.datacontenttype = Some("application/json".into());
    ev.data = Some(Data::Json(json!({
        "subscription": subscription.id,
        "key": key,
        "tenant": subscription.tenant,
        "sink": sink_description(&subscription.sink),
        "reason": d.reason.as_str(),
        "error": d.error,
        "last_response_code": d.response_code,
        "disabled_at": at,
        "enable_with": format!("civicbus endpoints enable {key}"),
    })));
    ev.set_tenant(&subscription.tenant);
    let routing_key = format!("{}.{}", subscription.tenant, ENDPOINT_DISABLED_TYPE);
    let msg = wire::to_amqp(
        &ev,
        vec![
            (HEADER_ACTOR.to_string(), BUS_ACTOR.to_string()),
            (
                HEADER_RECEIVED_AT.to_string(),
                Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            ),
        ],
    );
    Ok((Destination::Events { routing_key }, msg))
}

/// Where a sink delivers, without credentials: a webhook's scheme, host, port and path
/// (no user info, query or fragment), or an AMQP sink's exchange.
pub fn sink_description(sink: &SinkSpec) -> String {
    match sink {
        SinkSpec::Webhook(w) => {
            let url = w.url.as_str();
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit('@').next().unwrap_or_default();
            if scheme.is_empty() {
                format!("{host}{path}")
            } else {
                format!("{scheme}://{host}{path}")
            }
        }
        SinkSpec::Amqp(a) => format!("amqp exchange `{}`", a.exchange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civicbus_core::subscription::{AmqpSinkSpec, HttpMode, WebhookSpec};

    fn webhook(url: &str) -> SinkSpec {
        SinkSpec::Webhook(WebhookSpec {
            url: url.into(),
            secrets: vec!["whsec_c2VjcmV0".into()],
            mode: HttpMode::Binary,
            timeout: Duration::from_secs(5),
        })
    }

    #[test]
    fn sink_descriptions_carry_no_credentials() {
        assert_eq!(
            sink_description(&webhook(
                "https://user:pa55@records.minden.example:8443/hooks/permits?token=abc#x"
            )),
            "https://records.minden.example:8443/hooks/permits"
        );
        assert_eq!(
            sink_description(&webhook("http://127.0.0.1:9000")),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            sink_description(&SinkSpec::Amqp(AmqpSinkSpec {
                exchange: "gis.in".into(),
                routing_key: None,
            })),
            "amqp exchange `gis.in`"
        );
    }
}
