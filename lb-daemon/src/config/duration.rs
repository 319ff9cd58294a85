//! Durations as operators write them: `"100ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"1m30s"`, or a
//! plain number of seconds (`1`, `0.1`), which is how keepalived spells every interval.
//!
//! Decimals are read exactly from their text, so `0.1` is 100 ms and not 99.999… ms as a
//! binary float would make it; that matters for `advert_int`, which must be a multiple of
//! 10 ms in VRRPv3.

use std::time::Duration;

/// Units accepted after a number, with their length in nanoseconds.
const UNITS: &[(&str, u128)] = &[
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Digits after the decimal point kept; beyond nanoseconds nothing is representable.
const MAX_FRACTION_DIGITS: usize = 18;

/// Shown with duration errors so the fix is obvious.
pub(crate) const DURATION_HINT: &str =
    "write e.g. \"100ms\", \"1.5s\", \"2m\", \"1h\", or a number of seconds";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("a duration cannot be negative")]
    Negative,
    #[error("`{0}` is not a number")]
    BadNumber(String),
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
    #[error("missing unit after `{0}`")]
    MissingUnit(String),
    #[error("duration is too large")]
    TooLarge,
}

/// Parses a duration string; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return seconds(text);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() {
            return Err(DurationError::BadNumber(rest.to_owned()));
        }
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(number.to_owned()));
        }
        let unit_ns = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, ns)| *ns)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_owned()))?;
        total = total
            .checked_add(scaled(number, unit_ns)?)
            .ok_or(DurationError::TooLarge)?;
        rest = rest[unit_len..].trim_start();
    }
    nanos_to_duration(total)
}

/// Reads the text of a number (a TOML integer or float) as seconds.
pub fn seconds(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim().trim_start_matches('+');
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if text.contains(['e', 'E']) {
        // Exponent notation is rare enough that binary rounding is acceptable.
        let secs: f64 = text
            .parse()
            .map_err(|_| DurationError::BadNumber(text.to_owned()))?;
        return Duration::try_from_secs_f64(secs).map_err(|_| {
            if secs < 0.0 {
                DurationError::Negative
            } else {
                DurationError::BadNumber(text.to_owned())
            }
        });
    }
    nanos_to_duration(scaled(text, 1_000_000_000)?)
}

/// `number` (decimal text) times `unit_ns`, in nanoseconds, truncated below 1 ns.
fn scaled(number: &str, unit_ns: u128) -> Result<u128, DurationError> {
    let bad = || DurationError::BadNumber(number.to_owned());
    let number = number.replace('_', "");
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
    let valid = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !valid(whole) || !valid(fraction) {
        return Err(bad());
    }
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().map_err(|_| DurationError::TooLarge)?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| bad())?);
    mantissa
        .checked_mul(unit_ns)
        .map(|n| n / scale)
        .ok_or(DurationError::TooLarge)
}

fn nanos_to_duration(nanos: u128) -> Result<Duration, DurationError> {
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| DurationError::TooLarge)?;
    // The remainder is below 1e9 and so fits.
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| DurationError::TooLarge)?;
    Ok(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn compound_and_spaced() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 2m 3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration(" 100 ms "), Ok(ms(100)));
    }

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.1"), Ok(ms(100)));
        assert_eq!(seconds("1"), Ok(Duration::from_secs(1)));
        assert_eq!(seconds("0.01"), Ok(ms(10)));
        assert_eq!(seconds("40.95"), Ok(ms(40_950)));
        assert_eq!(seconds("1e-1"), Ok(ms(100)));
        assert_eq!(seconds("0.0000000019"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("-1s"), Err(DurationError::Negative));
        assert_eq!(seconds("-2"), Err(DurationError::Negative));
        assert_eq!(
            parse_duration("10 parsecs"),
            Err(DurationError::UnknownUnit("parsecs".into()))
        );
        assert_eq!(
            parse_duration("1m30"),
            Err(DurationError::MissingUnit("30".into()))
        );
        assert_eq!(
            parse_duration("1.2.3s"),
            Err(DurationError::BadNumber("1.2.3".into()))
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::BadNumber("s".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::TooLarge)
        );
    }
}
