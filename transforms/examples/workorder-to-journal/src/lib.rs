//! `ca.haliburton.workorder.completed` → `ca.haliburton.finance.journal.posted`.
//!
//! When a work order is completed, its labour cost (`WOLaborCost`) is charged to the
//! department's labour expense account and credited to the labour distribution clearing
//! account (payroll has already paid the wages): a two-line journal entry, debits equal to
//! credits. The entry is posted on the local date of `ActualFinishDate`, in that month's
//! fiscal period (municipal fiscal years are calendar years). A work order with no labour
//! cost gives zero events.
//!
//! The journal id is `<journalPrefix>-<WorkOrderId>` (so a redelivered event gives the
//! same entry); it is also the output's subject.
//!
//! Configuration (`labourAccount` and `clearingAccount` are required):
//!
//! ```json
//! {
//!   "labourAccount": "01-3100-5110",
//!   "labourAccountsByTemplate": { "RD-PATCH": "01-3100-5115" },
//!   "clearingAccount": "01-0000-2190",
//!   "municipality": "dysart",
//!   "journalPrefix": "WOL"
//! }
//! ```
//!
//! The municipality (whose ledger) is the configuration's, else the event's `tenant`.

use std::collections::BTreeMap;

use civicbus_transform_sdk::{
    Error, Event, Money, Transform, bail, catalogue_schema, log, parse_config,
};
use serde::{Deserialize, Serialize};

/// The input type.
pub const WORKORDER_COMPLETED: &str = "ca.haliburton.workorder.completed";
/// The output type.
pub const JOURNAL_POSTED: &str = "ca.haliburton.finance.journal.posted";

const TENANTS: [&str; 5] = [
    "county",
    "algonquin-highlands",
    "dysart",
    "highlands-east",
    "minden-hills",
];

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Labour expense account debited.
    pub labour_account: String,
    /// Labour expense account by `WOTemplateId`, overriding `labourAccount`.
    #[serde(default)]
    pub labour_accounts_by_template: BTreeMap<String, String>,
    /// Labour distribution clearing account credited.
    pub clearing_account: String,
    /// Whose ledger, when the event's tenant is not it.
    #[serde(default)]
    pub municipality: Option<String>,
    /// Prefix of the journal id.
    #[serde(default = "default_prefix")]
    pub journal_prefix: String,
}

fn default_prefix() -> String {
    "WOL".into()
}

/// The work order fields the mapping reads.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct WorkOrder {
    #[serde(rename = "WorkOrderId")]
    pub work_order_id: String,
    #[serde(rename = "WOTemplateId", default)]
    pub template_id: Option<String>,
    #[serde(rename = "Description", default)]
    pub description: Option<String>,
    #[serde(rename = "ActualFinishDate")]
    pub actual_finish_date: String,
    #[serde(rename = "WOLaborCost")]
    pub labor_cost: Money,
    #[serde(default)]
    pub currency: Option<String>,
}

/// `data` of `finance.journal.posted`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct JournalPosted {
    pub journal_id: String,
    pub posting_date: String,
    pub fiscal_year: u32,
    pub period: u32,
    pub currency: &'static str,
    pub municipality: String,
    pub description: String,
    pub source_ref: String,
    pub total_debit: Money,
    pub total_credit: Money,
    pub lines: Vec<JournalLine>,
}

/// One journal line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct JournalLine {
    pub line_no: u32,
    pub account: String,
    pub debit: Money,
    pub credit: Money,
    pub description: String,
}

/// The plugin.
#[derive(Debug)]
pub struct WorkorderToJournal {
    config: Config,
}

impl WorkorderToJournal {
    /// The plugin with a parsed configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        let accounts = [
            ("labourAccount".to_string(), &config.labour_account),
            ("clearingAccount".to_string(), &config.clearing_account),
        ]
        .into_iter()
        .chain(
            config
                .labour_accounts_by_template
                .iter()
                .map(|(k, v)| (format!("labourAccountsByTemplate.{k}"), v)),
        );
        for (key, account) in accounts {
            if !is_gl_account(account) {
                return Err(format!(
                    "configuration: {key}: `{account}` is not a GL account (fund-department-object, e.g. 01-3100-5110)"
                ));
            }
        }
        if let Some(m) = &config.municipality
            && !TENANTS.contains(&m.as_str())
        {
            return Err(format!(
                "configuration: municipality `{m}` is not a tenant id"
            ));
        }
        if !is_key(&format!("{}-X", config.journal_prefix)) {
            return Err(format!(
                "configuration: journalPrefix `{}` must be letters, digits and . _ / -",
                config.journal_prefix
            ));
        }
        Ok(WorkorderToJournal { config })
    }

    /// The mapping: a journal entry for the labour cost, nothing when there is none.
    pub fn map(&self, input: &Event) -> Result<Option<Event>, Error> {
        if input.ty != WORKORDER_COMPLETED {
            bail!("expected {WORKORDER_COMPLETED}, got {}", input.ty);
        }
        let wo: WorkOrder = input.data_json()?;
        if let Some(c) = wo.currency.as_deref()
            && c != "CAD"
        {
            bail!("currency {c}: ledgers are kept in CAD");
        }
        if wo.labor_cost.is_zero() {
            log::info!(
                "work order {} has no labour cost: nothing to post",
                wo.work_order_id
            );
            return Ok(None);
        }
        if wo.labor_cost.is_negative() {
            bail!("data.WOLaborCost {} is negative", wo.labor_cost);
        }
        let Some((year, month, date)) = local_date(&wo.actual_finish_date) else {
            bail!(
                "data.ActualFinishDate `{}` is not an RFC 3339 date-time",
                wo.actual_finish_date
            );
        };
        let municipality = self
            .config
            .municipality
            .clone()
            .or_else(|| input.tenant().map(str::to_string))
            .ok_or_else(|| {
                Error::terminal(
                    "no municipality: set it in the configuration or send the event with a tenant",
                )
            })?;
        if !TENANTS.contains(&municipality.as_str()) {
            bail!("municipality `{municipality}` is not a tenant id");
        }
        let journal_id = format!("{}-{}", self.config.journal_prefix, wo.work_order_id);
        if !is_key(&journal_id) {
            bail!(
                "journal id `{journal_id}` is longer than 40 characters or has characters other than letters, digits and . _ / -"
            );
        }
        let labour_account = wo
            .template_id
            .as_ref()
            .and_then(|t| self.config.labour_accounts_by_template.get(t))
            .unwrap_or(&self.config.labour_account);
        let description = match wo.description.as_deref() {
            Some(d) => truncate(
                &format!("Labour, work order {}: {d}", wo.work_order_id),
                500,
            ),
            None => format!("Labour, work order {}", wo.work_order_id),
        };
        let cost = wo.labor_cost;
        let entry = JournalPosted {
            journal_id: journal_id.clone(),
            posting_date: date,
            fiscal_year: year,
            period: month,
            currency: "CAD",
            municipality,
            description,
            source_ref: wo.work_order_id.clone(),
            total_debit: cost,
            total_credit: cost,
            lines: vec![
                JournalLine {
                    line_no: 1,
                    account: labour_account.clone(),
                    debit: cost,
                    credit: Money::ZERO,
                    description: format!("Labour {}", wo.work_order_id),
                },
                JournalLine {
                    line_no: 2,
                    account: self.config.clearing_account.clone(),
                    debit: Money::ZERO,
                    credit: cost,
                    description: "Labour distribution".into(),
                },
            ],
        };
        Event::derive(input, JOURNAL_POSTED)
            .subject(journal_id)
            .dataschema(catalogue_schema(JOURNAL_POSTED, 1))
            .json(&entry)
            .map(Some)
    }
}

impl Transform for WorkorderToJournal {
    fn init(config: &str) -> Result<Self, String> {
        WorkorderToJournal::new(parse_config(config)?)
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        Ok(self.map(&input)?.into_iter().collect())
    }
}

civicbus_transform_sdk::export!(WorkorderToJournal);

/// Year, month and `YYYY-MM-DD` of an RFC 3339 date-time, in its own offset (the local
/// date where the work was done).
fn local_date(s: &str) -> Option<(u32, u32, String)> {
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: u32 = s.get(0..4)?.parse().ok()?;
    let month: u32 = s.get(5..7)?.parse().ok()?;
    let day: u32 = s.get(8..10)?.parse().ok()?;
    if !(2000..=2100).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some((year, month, s[..10].to_string()))
}

fn is_gl_account(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && [2, 4, 4]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posting_date_is_the_local_date() {
        assert_eq!(
            local_date("2026-04-21T23:55:00-04:00"),
            Some((2026, 4, "2026-04-21".into()))
        );
        assert_eq!(local_date("2026-04-21"), None);
        assert_eq!(local_date("1999-04-21T10:00:00Z"), None);
    }

    #[test]
    fn accounts_are_required_and_checked() {
        let err = WorkorderToJournal::init("{}").expect_err("missing");
        assert!(err.contains("missing field `labourAccount`"), "{err}");
        let err = WorkorderToJournal::init(
            r#"{"labourAccount": "01-3100-5110", "clearingAccount": "2190"}"#,
        )
        .expect_err("bad");
        assert!(err.contains("clearingAccount"), "{err}");
    }
}
