//! AMQP header tables ↔ the string pairs of [`civicbus_core::ports`].

use chrono::{DateTime, SecondsFormat};
use civicbus_core::ports::PortError;
use lapin::types::{AMQPValue, DecimalValue, FieldTable, LongString};
use serde_json::Value;

use crate::error::short;

/// Header RabbitMQ quorum queues set on redelivered messages.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// Outbound headers as a table of AMQP long strings. A repeated name keeps the last value.
pub(crate) fn to_field_table(headers: &[(String, String)]) -> Result<FieldTable, PortError> {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        let key = short(name, &format!("header name '{}'", truncate(name)))?;
        table.insert(
            key,
            AMQPValue::LongString(LongString::from(value.as_bytes())),
        );
    }
    Ok(table)
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Every header of a received message, values as strings.
pub(crate) fn from_field_table(table: &FieldTable) -> Vec<(String, String)> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), value_to_string(v)))
        .collect()
}

/// One header value as a string: strings as UTF-8 (lossy), numbers in decimal, booleans
/// as `true`/`false`, timestamps as RFC 3339, tables and arrays as JSON text, void as `""`.
pub(crate) fn value_to_string(value: &AMQPValue) -> String {
    match value {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(i) => i.to_string(),
        AMQPValue::ShortShortUInt(i) => i.to_string(),
        AMQPValue::ShortInt(i) => i.to_string(),
        AMQPValue::ShortUInt(i) => i.to_string(),
        AMQPValue::LongInt(i) => i.to_string(),
        AMQPValue::LongUInt(i) => i.to_string(),
        AMQPValue::LongLongInt(i) => i.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::DecimalValue(d) => decimal_to_string(*d),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        AMQPValue::Timestamp(t) => timestamp_to_string(*t),
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => to_json(value).to_string(),
        AMQPValue::Void => String::new(),
    }
}

fn timestamp_to_string(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .map(|dt| dt.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}

fn decimal_to_string(d: DecimalValue) -> String {
    let digits = d.value.to_string();
    let scale = usize::from(d.scale);
    if scale == 0 {
        return digits;
    }
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{int}.{frac}")
}

fn float_json(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(f.to_string()))
}

/// A header value as JSON (for nested tables and arrays).
fn to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Float(f) => float_json(f64::from(*f)),
        AMQPValue::Double(f) => float_json(*f),
        AMQPValue::DecimalValue(d) => Value::String(decimal_to_string(*d)),
        AMQPValue::ShortString(_)
        | AMQPValue::LongString(_)
        | AMQPValue::ByteArray(_)
        | AMQPValue::Timestamp(_) => Value::String(value_to_string(value)),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(to_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
                .collect(),
        ),
        AMQPValue::Void => Value::Null,
    }
}

/// The quorum-queue delivery count of a message (0 when the header is absent).
pub(crate) fn delivery_count(table: Option<&FieldTable>) -> u32 {
    let Some(value) = table.and_then(|t| t.inner().get(DELIVERY_COUNT_HEADER)) else {
        return 0;
    };
    let n: Option<i128> = match value {
        AMQPValue::ShortShortInt(i) => Some(i128::from(*i)),
        AMQPValue::ShortShortUInt(i) => Some(i128::from(*i)),
        AMQPValue::ShortInt(i) => Some(i128::from(*i)),
        AMQPValue::ShortUInt(i) => Some(i128::from(*i)),
        AMQPValue::LongInt(i) => Some(i128::from(*i)),
        AMQPValue::LongUInt(i) => Some(i128::from(*i)),
        AMQPValue::LongLongInt(i) => Some(i128::from(*i)),
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => {
            value_to_string(value).trim().parse().ok()
        }
        _ => None,
    };
    n.map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{ByteArray, FieldArray, ShortString};

    #[test]
    fn scalars() {
        assert_eq!(value_to_string(&AMQPValue::Boolean(true)), "true");
        assert_eq!(value_to_string(&AMQPValue::ShortShortInt(-3)), "-3");
        assert_eq!(value_to_string(&AMQPValue::LongLongInt(-9)), "-9");
        assert_eq!(value_to_string(&AMQPValue::LongUInt(7)), "7");
        assert_eq!(value_to_string(&AMQPValue::Double(1.5)), "1.5");
        assert_eq!(
            value_to_string(&AMQPValue::LongString(LongString::from(
                &b"caf\xc3\xa9"[..]
            ))),
            "café"
        );
        assert_eq!(
            value_to_string(&AMQPValue::LongString(LongString::from(&b"a\xffb"[..]))),
            "a\u{fffd}b"
        );
        assert_eq!(
            value_to_string(&AMQPValue::ShortString(ShortString::from("s"))),
            "s"
        );
        assert_eq!(
            value_to_string(&AMQPValue::ByteArray(ByteArray::from(&b"xy"[..]))),
            "xy"
        );
        assert_eq!(
            value_to_string(&AMQPValue::Timestamp(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(value_to_string(&AMQPValue::Void), "");
    }

    #[test]
    fn decimals() {
        let d =
            |value, scale| value_to_string(&AMQPValue::DecimalValue(DecimalValue { scale, value }));
        assert_eq!(d(12345, 2), "123.45");
        assert_eq!(d(5, 3), "0.005");
        assert_eq!(d(7, 0), "7");
        assert_eq!(d(10, 1), "1.0");
    }

    #[test]
    fn nested_as_json() {
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongInt(1));
        inner.insert("s".into(), AMQPValue::LongString("x".into()));
        let arr = FieldArray::from(vec![
            AMQPValue::Boolean(false),
            AMQPValue::FieldTable(inner.clone()),
            AMQPValue::Void,
        ]);
        assert_eq!(
            value_to_string(&AMQPValue::FieldTable(inner)),
            r#"{"n":1,"s":"x"}"#
        );
        assert_eq!(
            value_to_string(&AMQPValue::FieldArray(arr)),
            r#"[false,{"n":1,"s":"x"},null]"#
        );
    }

    #[test]
    fn delivery_counts() {
        assert_eq!(delivery_count(None), 0);
        let mut t = FieldTable::default();
        t.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(3));
        assert_eq!(delivery_count(Some(&t)), 3);
        t.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(-1));
        assert_eq!(delivery_count(Some(&t)), 0);
    }

    #[test]
    fn outbound_table() {
        let t =
            to_field_table(&[("a".into(), "1".into()), ("b".into(), "two".into())]).expect("valid");
        assert_eq!(
            t.inner().get("b"),
            Some(&AMQPValue::LongString("two".into()))
        );
        let long = "h".repeat(300);
        assert!(to_field_table(&[(long, "v".into())]).is_err());
    }
}
