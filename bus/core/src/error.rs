//! Errors of envelope parsing and validation: each names the field and says how to fix it.

use std::fmt;

/// What kind of problem an [`EnvelopeError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeErrorKind {
    /// The body is not well-formed JSON (or not a JSON object/array where one is needed).
    MalformedJson,
    /// JSON nested deeper than the configured limit.
    TooDeep,
    /// A required attribute is missing.
    MissingAttribute,
    /// An attribute is present but has an invalid value.
    InvalidAttribute,
    /// The content type is not one this binding accepts.
    UnsupportedMediaType,
    /// A batch is not a JSON array or holds more events than allowed (an empty batch is
    /// valid).
    InvalidBatch,
    /// The body or an event exceeds a size limit.
    TooLarge,
}

impl EnvelopeErrorKind {
    /// A stable machine-readable slug, used in problem `type` URIs and quarantine records.
    pub fn slug(self) -> &'static str {
        match self {
            EnvelopeErrorKind::MalformedJson => "malformed-json",
            EnvelopeErrorKind::TooDeep => "json-too-deep",
            EnvelopeErrorKind::MissingAttribute => "missing-attribute",
            EnvelopeErrorKind::InvalidAttribute => "invalid-attribute",
            EnvelopeErrorKind::UnsupportedMediaType => "unsupported-media-type",
            EnvelopeErrorKind::InvalidBatch => "invalid-batch",
            EnvelopeErrorKind::TooLarge => "too-large",
        }
    }
}

/// An event that could not be parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError {
    /// What kind of problem.
    pub kind: EnvelopeErrorKind,
    /// The field at fault: an attribute name (`type`), a header (`ce-type`), `data`, or a
    /// batch position (`[3].source`); empty for the body as a whole.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl EnvelopeError {
    /// A new error.
    pub fn new(
        kind: EnvelopeErrorKind,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        EnvelopeError {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, its field prefixed with a batch position.
    pub fn at_index(mut self, index: usize) -> Self {
        self.field = if self.field.is_empty() {
            format!("[{index}]")
        } else {
            format!("[{index}].{}", self.field)
        };
        self
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for EnvelopeError {}
