//! Pure helpers: how a response or transport error becomes a [`SinkOutcome`], and how
//! URLs, bodies and `Retry-After` values are made safe to record.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use civicbus_core::ports::SinkOutcome;
use reqwest::Url;

/// Response header by which a subscriber asks civicbus not to retry a failed delivery.
/// Value `true` (case-insensitive, `1` also accepted) turns any failure into a Terminal one.
pub const NO_RETRY_HEADER: &str = "civicbus-no-retry";

/// The longest `Retry-After` honoured; longer values are capped to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Most characters of a response body quoted in a failure reason.
pub const MAX_EXCERPT_CHARS: usize = 200;

/// Parse a `Retry-After` value: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or
/// asctime), relative to `now`. A date in the past gives zero; values are capped at
/// [`MAX_RETRY_AFTER`]. `None` if the value is neither form.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Overlong digit strings overflow u64: treat them as "very long" and cap.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = parse_http_date(v)?;
    // HTTP-dates have whole-second resolution: round the wait up to a whole second.
    let delta = (when - now).to_std().unwrap_or(Duration::ZERO);
    let delta = if delta.subsec_nanos() > 0 {
        Duration::from_secs(delta.as_secs().saturating_add(1))
    } else {
        delta
    };
    Some(delta.min(MAX_RETRY_AFTER))
}

fn parse_http_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc2822(v) {
        return Some(d.with_timezone(&Utc));
    }
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    if let Ok(d) = NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S GMT") {
        return Some(d.and_utc());
    }
    // asctime: Sun Nov  6 08:49:37 1994
    let collapsed = v.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Ok(d) = NaiveDateTime::parse_from_str(&collapsed, "%a %b %e %H:%M:%S %Y") {
        return Some(d.and_utc());
    }
    None
}

/// Whether the no-retry header value asks to stop retrying.
pub fn is_no_retry(value: &str) -> bool {
    let v = value.trim();
    v.eq_ignore_ascii_case("true") || v == "1"
}

/// A URL for reasons and logs: scheme, host, port and path only (no userinfo, query or
/// fragment).
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    // These fail only for URLs that cannot have credentials; nothing to strip then.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// A short, human form of a duration: `10s`, `1.5s`, `250ms`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// A quotable excerpt of a response body: lossy UTF-8, every occurrence of a `redact`
/// string replaced, control characters turned into spaces, runs of whitespace collapsed,
/// at most [`MAX_EXCERPT_CHARS`] characters.
pub fn body_excerpt(body: &[u8], redact: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for r in redact {
        if !r.is_empty() && text.contains(r) {
            text = text.replace(r, "[redacted]");
        }
    }
    let cleaned = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>();
    let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= MAX_EXCERPT_CHARS {
        return collapsed;
    }
    let mut out: String = collapsed.chars().take(MAX_EXCERPT_CHARS).collect();
    out.push('…');
    out
}

/// What a response header set told us, besides the status.
#[derive(Debug, Clone, Default)]
pub struct ResponseHints {
    /// `Retry-After`, parsed and capped.
    pub retry_after: Option<Duration>,
    /// The subscriber sent [`NO_RETRY_HEADER`]: `true`.
    pub no_retry: bool,
    /// `Location`, resolved against the request URL and sanitised.
    pub location: Option<String>,
}

/// Classify an HTTP response.
///
/// 2xx delivered; 410 gone; 3xx terminal (redirects are not followed); 408, 409, 425,
/// 429 and 5xx retryable (with `Retry-After`); every other status terminal. With the
/// no-retry header a retryable failure becomes terminal.
pub fn classify_status(
    status: reqwest::StatusCode,
    url: &str,
    hints: &ResponseHints,
    excerpt: &str,
) -> SinkOutcome {
    let code = status.as_u16();
    if status.is_success() {
        return SinkOutcome::Delivered { status: Some(code) };
    }
    let label = match status.canonical_reason() {
        Some(r) => format!("HTTP {code} {r}"),
        None => format!("HTTP {code}"),
    };
    let quote = if excerpt.is_empty() {
        String::new()
    } else {
        format!("; response: {excerpt}")
    };
    if code == 410 {
        return SinkOutcome::Gone {
            reason: format!(
                "{label} from {url}: the subscriber retired this endpoint; update or disable the subscription{quote}"
            ),
        };
    }
    let retryable = matches!(code, 408 | 409 | 425 | 429) || status.is_server_error();
    if retryable && !hints.no_retry {
        let after = match hints.retry_after {
            Some(d) => format!("; subscriber asked to retry after {}", human_duration(d)),
            None => String::new(),
        };
        return SinkOutcome::Retryable {
            status: Some(code),
            reason: format!("{label} from {url}{after}{quote}"),
            retry_after: hints.retry_after,
        };
    }
    let advice = if status.is_redirection() {
        match &hints.location {
            Some(loc) => format!(
                ": redirects to {loc}; civicbus does not follow redirects, set the subscription URL to the new address"
            ),
            None => ": a redirect without a Location; civicbus does not follow redirects, check the subscription URL".to_string(),
        }
    } else {
        match code {
            401 | 403 => ": the subscriber refused the request; check that it accepts civicbus and holds the subscription's current signing secret".to_string(),
            404 => ": no endpoint at this URL; check the subscription URL".to_string(),
            413 => ": the event is larger than the subscriber accepts".to_string(),
            400 | 422 => ": the subscriber rejected the event's content".to_string(),
            _ => String::new(),
        }
    };
    let no_retry = if hints.no_retry {
        format!("; the subscriber sent `{NO_RETRY_HEADER}: true`, so it will not be retried")
    } else {
        String::new()
    };
    SinkOutcome::Terminal {
        status: Some(code),
        reason: format!("{label} from {url}{advice}{no_retry}{quote}"),
    }
}

/// Classify a transport error (no response).
pub fn classify_error(
    err: &reqwest::Error,
    url: &str,
    host: &str,
    timeout: Duration,
    connect_timeout: Duration,
) -> SinkOutcome {
    let chain = error_chain(err);
    let lower = chain.to_ascii_lowercase();
    let reason = if err.is_builder() {
        return SinkOutcome::Terminal {
            status: None,
            reason: format!("could not build the request to {url}: {chain}"),
        };
    } else if err.is_timeout() && err.is_connect() {
        format!(
            "could not connect to {url} within {}: {chain}",
            human_duration(connect_timeout)
        )
    } else if err.is_timeout() {
        format!(
            "timed out after {} waiting for {url}",
            human_duration(timeout)
        )
    } else if err.is_dns() {
        format!("could not resolve host `{host}` (DNS) for {url}: {chain}")
    } else if has_io_kind(err, std::io::ErrorKind::ConnectionRefused) {
        format!("connection refused by {url}: nothing is listening there")
    } else if err.is_connect()
        && url.starts_with("https:")
        && (has_io_kind(err, std::io::ErrorKind::InvalidData)
            || lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake"))
    {
        format!("TLS handshake with {host} failed for {url}: {chain}")
    } else if err.is_connect() {
        format!("could not connect to {url}: {chain}")
    } else {
        format!("request to {url} failed: {chain}")
    };
    SinkOutcome::Retryable {
        status: None,
        reason,
        retry_after: None,
    }
}

fn has_io_kind(err: &reqwest::Error, kind: std::io::ErrorKind) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == kind {
                return true;
            }
            // `io::Error::source` skips the wrapped error itself; descend into it.
            if let Some(inner) = io.get_ref() {
                source = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        source = e.source();
    }
    false
}

/// The messages of an error and its sources joined with `: `, without reqwest's URL (which
/// may hold credentials), duplicates dropped.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        let msg = e.to_string();
        // hyper-util's wrapper says nothing the classification does not already say.
        let noise = msg.starts_with("client error (");
        if !msg.is_empty() && !noise && !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        source = e.source();
    }
    if parts.is_empty() {
        // No sources: reqwest's own kind, stripped of the URL.
        let mut msg = String::new();
        if err.is_body() {
            msg.push_str("error sending or reading the body");
        } else if err.is_request() {
            msg.push_str("error sending the request");
        } else {
            msg.push_str("HTTP client error");
        }
        return msg;
    }
    let joined = parts.join(": ");
    body_excerpt(joined.as_bytes(), &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_forms() {
        let now = Utc
            .with_ymd_and_hms(1994, 11, 6, 8, 49, 0)
            .single()
            .expect("valid date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("172800", now), Some(MAX_RETRY_AFTER));
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(37)),
                "{date}"
            );
        }
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn excerpt_is_sanitised() {
        let body = b"bad\n\tfield \x1b[31m  sig=v1,abc secret whsec_xyz";
        let e = body_excerpt(body, &["v1,abc", "whsec_xyz"]);
        assert_eq!(e, "bad field [31m sig=[redacted] secret [redacted]");
        let long = "x".repeat(1000);
        let e = body_excerpt(long.as_bytes(), &[]);
        assert_eq!(e.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        let e = body_excerpt("é".repeat(300).as_bytes(), &[]);
        assert_eq!(e.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert_eq!(body_excerpt(b"\xff\xfe ok", &[]), "\u{FFFD}\u{FFFD} ok");
    }

    #[test]
    fn urls_lose_credentials_and_query() {
        let u = Url::parse("https://user:pw@example.org:8443/a/b?token=s3cret#frag")
            .expect("valid url");
        assert_eq!(display_url(&u), "https://example.org:8443/a/b");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn no_retry_values() {
        assert!(is_no_retry("true"));
        assert!(is_no_retry(" TRUE "));
        assert!(is_no_retry("1"));
        assert!(!is_no_retry("false"));
        assert!(!is_no_retry(""));
    }
}
