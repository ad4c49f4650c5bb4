//! Why a transform failed: terminal (dead-letter the event) or retryable (try again later).

use std::fmt;

/// Whether retrying the same event could succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The event can never be transformed (bad input, unmappable value): civicbus
    /// dead-letters it with the message. Retrying would give the same answer.
    Terminal,
    /// A passing condition: civicbus retries the delivery per the subscription's policy.
    /// A transform sees only the event and its configuration, so this is rare: use it when
    /// the input says it is not ready yet (for example a record that another event will
    /// complete), never for bad data.
    Retryable,
}

impl ErrorKind {
    /// `terminal` or `retryable`, as in the WIT.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Terminal => "terminal",
            ErrorKind::Retryable => "retryable",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transform failed: a kind and a message for the operator (it ends up in the dead
/// letter or the retry log, so say what was wrong and where, e.g. which field).
///
/// ```
/// use civicbus_transform_sdk::{Error, ErrorKind};
///
/// let e = Error::terminal("PermitNum is missing");
/// assert_eq!(e.kind(), ErrorKind::Terminal);
/// assert_eq!(e.to_string(), "terminal: PermitNum is missing");
/// assert!(Error::retryable("not ready").is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error with the given kind and message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The event can never be transformed: it is dead-lettered with `message`.
    pub fn terminal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Terminal, message)
    }

    /// A passing condition: the delivery is retried per the subscription's policy.
    pub fn retryable(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Retryable, message)
    }

    /// Terminal or retryable.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the error is terminal.
    pub fn is_terminal(&self) -> bool {
        self.kind == ErrorKind::Terminal
    }

    /// Whether the error is retryable.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context: ` put before the message.
    ///
    /// ```
    /// use civicbus_transform_sdk::Error;
    /// let e = Error::terminal("not a date").context("FeeAssessedDate");
    /// assert_eq!(e.message(), "FeeAssessedDate: not a date");
    /// ```
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// A JSON error is about the data, so it is terminal.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::terminal(crate::event::without_position(&e))
    }
}

/// Early return with a terminal error, `format!`-style.
///
/// ```
/// use civicbus_transform_sdk::{bail, Error};
/// fn check(fee: &str) -> Result<(), Error> {
///     if fee.starts_with('-') {
///         bail!("Fee {fee} is negative");
///     }
///     Ok(())
/// }
/// assert_eq!(check("-1").unwrap_err().message(), "Fee -1 is negative");
/// ```
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::Error::terminal(::std::format!($($arg)+)))
    };
}
