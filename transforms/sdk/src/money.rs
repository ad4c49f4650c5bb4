//! Money as civicbus carries it: a decimal string with at most two decimals, never a float.
//!
//! [`Money`] holds whole cents, so sums are exact, and reads and writes the catalogue's
//! form (`"2150.00"`, `"-12.5"`); in serde it is a string and refuses JSON numbers.
//!
//! ```
//! use civicbus_transform_sdk::Money;
//! let labour: Money = "612.4".parse().unwrap();
//! let material: Money = "388.00".parse().unwrap();
//! assert_eq!(labour.to_string(), "612.40");
//! assert_eq!(labour.checked_add(material).unwrap().to_string(), "1000.40");
//! assert!("12.345".parse::<Money>().is_err());
//! assert!("1e3".parse::<Money>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in whole cents; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money {
    cents: i64,
}

/// Why a string is not a money amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyError(String);

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MoneyError {}

impl From<MoneyError> for crate::Error {
    fn from(e: MoneyError) -> Self {
        crate::Error::terminal(e.0)
    }
}

/// The most whole units the catalogue's money pattern allows (15 digits).
const MAX_UNITS: i64 = 999_999_999_999_999;

impl Money {
    /// Zero.
    pub const ZERO: Money = Money { cents: 0 };

    /// An amount from whole cents.
    pub const fn from_cents(cents: i64) -> Self {
        Money { cents }
    }

    /// The amount in whole cents.
    pub const fn cents(self) -> i64 {
        self.cents
    }

    /// Whether the amount is zero.
    pub const fn is_zero(self) -> bool {
        self.cents == 0
    }

    /// Whether the amount is greater than zero.
    pub const fn is_positive(self) -> bool {
        self.cents > 0
    }

    /// Whether the amount is less than zero.
    pub const fn is_negative(self) -> bool {
        self.cents < 0
    }

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.cents.checked_add(other.cents).map(Money::from_cents)
    }

    /// The difference, or `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.cents.checked_sub(other.cents).map(Money::from_cents)
    }

    /// The absolute amount.
    pub fn abs(self) -> Money {
        Money::from_cents(self.cents.abs())
    }
}

impl std::ops::Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money::from_cents(-self.cents)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, MoneyError> {
        let bad = || {
            MoneyError(format!(
                "`{s}` is not a money amount (a decimal string with at most two decimals, e.g. \"2150.00\")"
            ))
        };
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (units, frac) = match body.split_once('.') {
            Some((u, f)) => (u, Some(f)),
            None => (body, None),
        };
        if units.is_empty()
            || !units.bytes().all(|b| b.is_ascii_digit())
            || (units.len() > 1 && units.starts_with('0'))
        {
            return Err(bad());
        }
        let units: i64 = units.parse().map_err(|_| bad())?;
        if units > MAX_UNITS {
            return Err(bad());
        }
        let frac_cents = match frac {
            None => 0,
            Some(f) if (1..=2).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
                let v: i64 = f.parse().map_err(|_| bad())?;
                if f.len() == 1 { v * 10 } else { v }
            }
            Some(_) => return Err(bad()),
        };
        let cents = units * 100 + frac_cents;
        Ok(Money::from_cents(if negative { -cents } else { cents }))
    }
}

/// Always two decimals: `1486.00`, `-12.50`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.cents < 0 { "-" } else { "" };
        let abs = self.cents.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a money amount as a decimal string, e.g. \"2150.00\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_catalogue_form() {
        for (s, cents, shown) in [
            ("0", 0, "0.00"),
            ("0.05", 5, "0.05"),
            ("12.5", 1250, "12.50"),
            ("-12.5", -1250, "-12.50"),
            ("2150.00", 215000, "2150.00"),
            (
                "999999999999999.99",
                99_999_999_999_999_999,
                "999999999999999.99",
            ),
        ] {
            let m: Money = s.parse().expect(s);
            assert_eq!(m.cents(), cents, "{s}");
            assert_eq!(m.to_string(), shown, "{s}");
        }
        for bad in [
            "",
            "-",
            ".5",
            "5.",
            "05",
            "1.234",
            "1e3",
            "+1",
            "1,000.00",
            " 1",
            "1000000000000000",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_is_a_string_only() {
        let m: Money = serde_json::from_str("\"3246.5\"").expect("string");
        assert_eq!(serde_json::to_string(&m).expect("ser"), "\"3246.50\"");
        let err = serde_json::from_str::<Money>("3246.5").expect_err("number");
        assert!(err.to_string().contains("decimal string"), "{err}");
    }

    #[test]
    fn arithmetic() {
        let a = Money::from_cents(61240);
        assert_eq!(
            a.checked_add(Money::from_cents(38800)),
            Some(Money::from_cents(100040))
        );
        assert_eq!(a.checked_sub(a), Some(Money::ZERO));
        assert!((-a).is_negative() && (-a).abs() == a && a.is_positive());
        assert_eq!(Money::from_cents(i64::MAX).checked_add(a), None);
    }
}
