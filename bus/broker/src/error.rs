//! Turning lapin errors into [`PortError`]s with messages an operator can act on, and
//! keeping passwords out of them.

use civicbus_core::ports::PortError;
use lapin::ErrorKind;
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};

/// The environment variable naming the broker URL (mentioned in error messages).
pub const BROKER_URL_ENV: &str = "CIVICBUS_BROKER_URL";

/// `url` with the password replaced by `***`, safe to log and show.
///
/// ```
/// assert_eq!(
///     civicbus_broker::redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
///     "amqp://guest:***@127.0.0.1:5672/%2f"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    // The last `@` ends the user info: a password is never shown even if it contains
    // characters that would end the authority in a well-formed URL.
    match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let host = &rest[at..];
            match userinfo.find(':') {
                Some(colon) => format!("{scheme}{}:***{host}", &userinfo[..colon]),
                None => format!("{scheme}{userinfo}{host}"),
            }
        }
        None => url.to_string(),
    }
}

/// The parts of a broker URL that may be shown: `host:port`, user name and vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts {
    /// `host:port` (default port filled in).
    pub endpoint: String,
    /// User name (`guest` when absent).
    pub username: String,
}

pub(crate) fn url_parts(url: &str) -> UrlParts {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i], &url[i + 3..]),
        None => ("amqp", url),
    };
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let authority_end = hostpart.find(['/', '?', '#']).unwrap_or(hostpart.len());
    let authority = &hostpart[..authority_end];
    let default_port = if scheme.eq_ignore_ascii_case("amqps") {
        5671
    } else {
        5672
    };
    let has_port = match authority.rfind(':') {
        // `[::1]` has colons but no port; `[::1]:5672` has one after the bracket.
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let host = if authority.is_empty() {
        "localhost"
    } else {
        authority
    };
    let endpoint = if has_port {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    };
    let username = userinfo
        .map(|u| u.split(':').next().unwrap_or_default().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "guest".to_string());
    UrlParts { endpoint, username }
}

/// The message for a broker that cannot be reached at all.
pub(crate) fn cannot_reach(endpoint: &str, cause: &str) -> PortError {
    PortError::unavailable(format!(
        "cannot reach RabbitMQ at {endpoint} ({cause}): is it running? start it with \
         `rabbitmq-server -detached` or set {BROKER_URL_ENV}"
    ))
}

/// Classify an error from the initial connection attempt.
pub(crate) fn connect_error(err: &lapin::Error, parts: &UrlParts, redacted: &str) -> PortError {
    let endpoint = &parts.endpoint;
    match err.kind() {
        ErrorKind::ProtocolError(e) => match e.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => PortError::rejected(format!(
                "RabbitMQ at {endpoint} refused the login of user '{}' ({}): check the user \
                 name and password in {BROKER_URL_ENV} ({redacted})",
                parts.username,
                e.get_message()
            )),
            AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => PortError::rejected(format!(
                "RabbitMQ at {endpoint} does not let user '{}' use this vhost ({}): create the \
                 vhost or grant permissions (`rabbitmqctl set_permissions`), or fix \
                 {BROKER_URL_ENV} ({redacted})",
                parts.username,
                e.get_message()
            )),
            _ => PortError::unavailable(format!(
                "RabbitMQ at {endpoint} refused the connection: {}",
                e.get_message()
            )),
        },
        ErrorKind::IOError(io) => cannot_reach(endpoint, &io.to_string()),
        _ => PortError::unavailable(format!("cannot connect to RabbitMQ at {endpoint}: {err}")),
    }
}

/// Classify an error of an operation on an open connection. `what` says what was being
/// done ("publishing to exchange 'x'").
pub(crate) fn classify(err: &lapin::Error, what: &str) -> PortError {
    match err.kind() {
        ErrorKind::ProtocolError(e) => match e.kind() {
            AMQPErrorKind::Soft(
                AMQPSoftError::NOTFOUND
                | AMQPSoftError::ACCESSREFUSED
                | AMQPSoftError::PRECONDITIONFAILED
                | AMQPSoftError::RESOURCELOCKED
                | AMQPSoftError::CONTENTTOOLARGE
                | AMQPSoftError::NOROUTE,
            ) => PortError::rejected(format!("{what}: RabbitMQ refused it: {}", e.get_message())),
            AMQPErrorKind::Soft(_) => {
                PortError::unavailable(format!("{what}: RabbitMQ: {}", e.get_message()))
            }
            AMQPErrorKind::Hard(_) => PortError::unavailable(format!(
                "{what}: RabbitMQ closed the connection: {}",
                e.get_message()
            )),
        },
        ErrorKind::InvalidChannelState(..) | ErrorKind::InvalidConnectionState(_) => {
            PortError::unavailable(format!(
                "{what}: the RabbitMQ channel or connection is not open ({err}); retry later"
            ))
        }
        _ => PortError::unavailable(format!("{what}: {err}")),
    }
}

/// A name RabbitMQ accepts as a short string (≤ 255 bytes), or a rejection.
pub(crate) fn short(value: &str, what: &str) -> Result<lapin::types::ShortString, PortError> {
    lapin::types::ShortString::try_new(value).map_err(|_| {
        PortError::rejected(format!(
            "{what} is {} bytes long; AMQP allows at most 255",
            value.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("amqps://u:p@ss/w@rd@host/vh"),
            "amqps://u:***@host/vh"
        );
        assert_eq!(
            redact_url("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://user@host"), "amqp://user@host");
        assert_eq!(redact_url("u:secret@host"), "u:***@host");
    }

    #[test]
    fn endpoint_and_user() {
        let p = url_parts("amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(p.endpoint, "127.0.0.1:5672");
        assert_eq!(p.username, "guest");
        let p = url_parts("amqps://bus@rabbit.example.org/prod");
        assert_eq!(p.endpoint, "rabbit.example.org:5671");
        assert_eq!(p.username, "bus");
        let p = url_parts("amqp://[::1]/%2f");
        assert_eq!(p.endpoint, "[::1]:5672");
        assert_eq!(p.username, "guest");
        let p = url_parts("amqp://x:y@[::1]:5673");
        assert_eq!(p.endpoint, "[::1]:5673");
        let p = url_parts("amqp://");
        assert_eq!(p.endpoint, "localhost:5672");
    }

    #[test]
    fn short_strings() {
        assert!(short("abc", "routing key").is_ok());
        let long = "x".repeat(256);
        let err = short(&long, "routing key").expect_err("too long");
        assert_eq!(err.kind, civicbus_core::ports::PortErrorKind::Rejected);
    }
}
