//! `ca.haliburton.permitting.permit.fee-assessed` → `ca.haliburton.finance.permitfee.receipted`.
//!
//! The permitting systems take payment when they assess fees (at the counter or in the
//! online portal) and put it on the assessment as `Payment` (a civicbus extension of
//! BLDS; the schema allows additional members):
//!
//! ```json
//! "Payment": { "ReceiptNum": "DYS-R-2026-03318", "PaymentDate": "2026-04-03",
//!              "PaymentMethod": "Debit", "AmountPaid": "3246.50" }
//! ```
//!
//! One paid assessment gives one receipt for finance, linked by `PermitNum`; the receipt
//! number is the output's subject. An assessment without a payment (to be paid later) or
//! with nothing paid gives zero events. `AmountPaid` defaults to the assessed `Fee`.
//!
//! The revenue account (`glAccount`) is `glAccounts[PermitTypeMapped]` from the
//! configuration, else the fee items' `GLAccount` when they all share one, else
//! `defaultGlAccount`, else left out. Configuration (all optional):
//!
//! ```json
//! {
//!   "glAccounts": { "Building": "01-2400-4210", "Septic": "01-2450-4215" },
//!   "defaultGlAccount": "01-2400-4200",
//!   "municipality": "dysart"
//! }
//! ```
//!
//! The municipality is the assessment's `Jurisdiction`, else the configuration's
//! `municipality`, else the event's `tenant`.

use std::collections::BTreeMap;

use civicbus_transform_sdk::{
    Error, Event, Money, Transform, bail, catalogue_schema, log, parse_config,
};
use serde::{Deserialize, Serialize};

/// The input type.
pub const FEE_ASSESSED: &str = "ca.haliburton.permitting.permit.fee-assessed";
/// The output type.
pub const FEE_RECEIPTED: &str = "ca.haliburton.finance.permitfee.receipted";

const TENANTS: [&str; 5] = [
    "county",
    "algonquin-highlands",
    "dysart",
    "highlands-east",
    "minden-hills",
];

/// The plugin configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Revenue account by `PermitTypeMapped`.
    #[serde(default)]
    pub gl_accounts: BTreeMap<String, String>,
    /// Revenue account when no other applies.
    #[serde(default)]
    pub default_gl_account: Option<String>,
    /// Municipality when the assessment has no `Jurisdiction`.
    #[serde(default)]
    pub municipality: Option<String>,
}

/// The fee assessment fields the mapping reads.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct FeeAssessed {
    #[serde(rename = "PermitNum")]
    pub permit_num: String,
    #[serde(rename = "Fee")]
    pub fee: Money,
    #[serde(rename = "Jurisdiction", default)]
    pub jurisdiction: Option<String>,
    #[serde(rename = "PermitTypeMapped", default)]
    pub permit_type_mapped: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(rename = "FeeItems", default)]
    pub fee_items: Vec<FeeItem>,
    #[serde(rename = "Payment", default)]
    pub payment: Option<Payment>,
}

/// One fee line (only the account is read).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct FeeItem {
    #[serde(rename = "GLAccount", default)]
    pub gl_account: Option<String>,
}

/// The payment taken with the assessment.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Payment {
    #[serde(rename = "ReceiptNum")]
    pub receipt_num: String,
    #[serde(rename = "PaymentDate")]
    pub payment_date: String,
    #[serde(rename = "PaymentMethod")]
    pub payment_method: String,
    #[serde(rename = "AmountPaid", default)]
    pub amount_paid: Option<Money>,
}

/// `data` of `finance.permitfee.receipted`.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct FeeReceipted {
    #[serde(rename = "PermitNum")]
    pub permit_num: String,
    pub municipality: String,
    #[serde(rename = "receiptNumber")]
    pub receipt_number: String,
    #[serde(rename = "receiptDate")]
    pub receipt_date: String,
    pub amount: Money,
    pub currency: &'static str,
    #[serde(rename = "paymentMethod")]
    pub payment_method: &'static str,
    #[serde(rename = "feeType")]
    pub fee_type: String,
    #[serde(rename = "glAccount", skip_serializing_if = "Option::is_none")]
    pub gl_account: Option<String>,
}

/// The plugin.
#[derive(Debug)]
pub struct FeeToReceipt {
    config: Config,
}

impl FeeToReceipt {
    /// The plugin with a parsed configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        for (key, account) in config
            .gl_accounts
            .iter()
            .map(|(k, v)| (format!("glAccounts.{k}"), v))
            .chain(
                config
                    .default_gl_account
                    .iter()
                    .map(|v| ("defaultGlAccount".to_string(), v)),
            )
        {
            if !is_gl_account(account) {
                return Err(format!(
                    "configuration: {key}: `{account}` is not a GL account (fund-department-object, e.g. 01-2400-4210)"
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
        Ok(FeeToReceipt { config })
    }

    /// The mapping: a receipt for a paid assessment, nothing for an unpaid one.
    pub fn map(&self, input: &Event) -> Result<Option<Event>, Error> {
        if input.ty != FEE_ASSESSED {
            bail!("expected {FEE_ASSESSED}, got {}", input.ty);
        }
        let fee: FeeAssessed = input.data_json()?;
        if let Some(c) = fee.currency.as_deref()
            && c != "CAD"
        {
            bail!("currency {c}: permit fees are receipted in CAD only");
        }
        let Some(payment) = &fee.payment else {
            log::info!(
                "fee of {} assessed on {}, not paid yet: no receipt",
                fee.fee,
                fee.permit_num
            );
            return Ok(None);
        };
        let amount = payment.amount_paid.unwrap_or(fee.fee);
        if amount.is_zero() {
            log::info!(
                "nothing paid on {} (fee {}): no receipt",
                fee.permit_num,
                fee.fee
            );
            return Ok(None);
        }
        if amount.is_negative() {
            bail!("data.Payment.AmountPaid {amount} is negative: refunds are not receipts");
        }
        if !is_key(&payment.receipt_num) {
            bail!(
                "data.Payment.ReceiptNum `{}` is not a receipt number (letters, digits and . _ / -, at most 40)",
                payment.receipt_num
            );
        }
        if !is_date(&payment.payment_date) {
            bail!(
                "data.Payment.PaymentDate `{}` is not a date (YYYY-MM-DD)",
                payment.payment_date
            );
        }
        let Some(method) = payment_method(&payment.payment_method) else {
            bail!(
                "data.Payment.PaymentMethod `{}` is not cash, cheque, debit, credit card, EFT or online",
                payment.payment_method
            );
        };
        let municipality = fee
            .jurisdiction
            .clone()
            .or_else(|| self.config.municipality.clone())
            .or_else(|| input.tenant().map(str::to_string))
            .ok_or_else(|| Error::terminal("no municipality: the assessment has no Jurisdiction, and neither the configuration nor the event's tenant names one"))?;
        if !TENANTS.contains(&municipality.as_str()) {
            bail!("municipality `{municipality}` is not a tenant id");
        }
        let receipt = FeeReceipted {
            permit_num: fee.permit_num.clone(),
            municipality,
            receipt_number: payment.receipt_num.clone(),
            receipt_date: payment.payment_date.clone(),
            amount,
            currency: "CAD",
            payment_method: method,
            fee_type: match &fee.permit_type_mapped {
                Some(t) => format!("{t} permit fee"),
                None => "Permit fee".to_string(),
            },
            gl_account: self.gl_account(&fee),
        };
        Event::derive(input, FEE_RECEIPTED)
            .subject(payment.receipt_num.clone())
            .dataschema(catalogue_schema(FEE_RECEIPTED, 1))
            .json(&receipt)
            .map(Some)
    }

    fn gl_account(&self, fee: &FeeAssessed) -> Option<String> {
        if let Some(a) = fee
            .permit_type_mapped
            .as_ref()
            .and_then(|t| self.config.gl_accounts.get(t))
        {
            return Some(a.clone());
        }
        let mut item_accounts: Vec<&str> = fee
            .fee_items
            .iter()
            .filter_map(|i| i.gl_account.as_deref())
            .collect();
        item_accounts.sort_unstable();
        item_accounts.dedup();
        match item_accounts.as_slice() {
            [one] if is_gl_account(one) && fee.fee_items.iter().all(|i| i.gl_account.is_some()) => {
                Some(one.to_string())
            }
            _ => self.config.default_gl_account.clone(),
        }
    }
}

impl Transform for FeeToReceipt {
    fn init(config: &str) -> Result<Self, String> {
        FeeToReceipt::new(parse_config(config)?)
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        Ok(self.map(&input)?.into_iter().collect())
    }
}

civicbus_transform_sdk::export!(FeeToReceipt);

/// The catalogue's payment method for what the permitting system wrote.
fn payment_method(s: &str) -> Option<&'static str> {
    let norm: String = s
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Some(match norm.as_str() {
        "cash" => "CASH",
        "cheque" | "check" | "chq" => "CHEQUE",
        "debit" | "interac" | "interacdebit" | "debitcard" => "DEBIT",
        "creditcard" | "credit" | "visa" | "mastercard" | "amex" => "CREDIT_CARD",
        "eft" | "electronicfundstransfer" | "banktransfer" => "EFT",
        "online" | "web" | "portal" | "onlinepayment" => "ONLINE",
        _ => return None,
    })
}

/// fund-department-object: `01-2400-4210`.
fn is_gl_account(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && [2, 4, 4]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A business key: letters, digits and . _ / -, starting with a letter or digit, at most 40.
fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
}

/// YYYY-MM-DD.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && matches!(s[5..7].parse::<u8>(), Ok(1..=12))
        && matches!(s[8..10].parse::<u8>(), Ok(1..=31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_methods() {
        assert_eq!(payment_method("Debit"), Some("DEBIT"));
        assert_eq!(payment_method("Credit Card"), Some("CREDIT_CARD"));
        assert_eq!(payment_method("e-Cheque"), None);
        assert_eq!(payment_method("CHEQUE"), Some("CHEQUE"));
    }

    #[test]
    fn configuration_is_checked_at_init() {
        assert!(FeeToReceipt::init("{}").is_ok());
        let err = FeeToReceipt::init(r#"{"glAccounts": {"Building": "01-2400"}}"#)
            .expect_err("bad account");
        assert!(err.contains("glAccounts.Building"), "{err}");
        assert!(is_date("2026-04-03") && !is_date("2026-4-03") && !is_date("2026-13-01"));
        assert!(is_key("DYS-R-2026-03318") && !is_key("-R") && !is_key("R 1"));
    }
}
