//! RFC 9457 problem details (`application/problem+json`) for every API error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field-level error inside a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field at fault: attribute, header, or `[i].attribute` in a batch; for schema
    /// violations `data/<pointer>` (`[i].data/<pointer>` in a batch).
    pub field: String,
    /// What is wrong and how to fix it.
    pub detail: String,
    /// For schema violations: JSON pointer into the event's `data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// For schema violations: the schema keyword that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
}

/// A problem details document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// URI reference identifying the problem type, e.g. `/problems/missing-attribute`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this occurrence and how to fix it.
    pub detail: String,
    /// Field-level errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The schema (`$id`) the event was checked against, for schema problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Box<String>>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A problem of type `/problems/<slug>`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            ty: format!("/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            schema: None,
            retry_after: None,
        }
    }

    /// Add a field-level error.
    pub fn with_field(mut self, field: impl Into<String>, detail: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            detail: detail.into(),
            pointer: None,
            keyword: None,
        });
        self
    }

    /// Add a schema violation: the field, the JSON pointer into `data`, the keyword.
    pub fn with_violation(
        mut self,
        field: impl Into<String>,
        pointer: impl Into<String>,
        keyword: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            detail: detail.into(),
            pointer: Some(pointer.into()),
            keyword: Some(keyword.into()),
        });
        self
    }

    /// Name the schema the event was checked against.
    pub fn with_schema(mut self, id: impl Into<String>) -> Self {
        self.schema = Some(Box::new(id.into()));
        self
    }

    /// Ask the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 401 with the `WWW-Authenticate` challenge.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid credential",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"civicbus\""),
            );
        }
        resp
    }
}
