//! The hour an event belongs to, its actor key (`YYYY-MM-DDTHH`, UTC), and minute ranges
//! inside it.
//!
//! Civil dates are computed here (Howard Hinnant's `days_from_civil` / `civil_from_days`)
//! rather than with a date crate: the domain needs exactly one calendar conversion.

use std::fmt;

use serde::{Deserialize, Serialize};

const MS_PER_MINUTE: u64 = 60_000;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MINUTES_PER_HOUR: u8 = 60;

/// One UTC hour: hours since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HourBucket(u64);

impl HourBucket {
    /// The hour holding `time_ms` (Unix milliseconds).
    pub fn of_ms(time_ms: u64) -> Self {
        Self(time_ms / MS_PER_HOUR)
    }

    /// The hour `hours` after the epoch.
    pub fn from_hours(hours: u64) -> Self {
        Self(hours)
    }

    /// Hours since the epoch.
    pub fn hours(self) -> u64 {
        self.0
    }

    /// Parse a key written by [`Display`](fmt::Display), e.g. `2026-12-06T20`. Anything else
    /// (another shape, a date that does not exist, an hour before 1970) is `None`.
    pub fn parse(key: &str) -> Option<Self> {
        let bytes = key.as_bytes();
        if bytes.len() != 13 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<i64> {
            let text = key.get(range)?;
            if !text.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        let (year, month, day, hour) = (
            number(0..4)?,
            number(5..7)?,
            number(8..10)?,
            number(11..13)?,
        );
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let hours = u64::try_from(days.checked_mul(24)?.checked_add(hour)?).ok()?;
        let bucket = Self(hours);
        // A day past the month's end (2026-02-30) maps to another date: refuse it.
        (bucket.to_string() == key).then_some(bucket)
    }

    /// First millisecond of the hour.
    pub fn start_ms(self) -> u64 {
        self.0 * MS_PER_HOUR
    }

    /// Whether `time_ms` falls in this hour.
    pub fn contains(self, time_ms: u64) -> bool {
        Self::of_ms(time_ms) == self
    }

    /// The minute of the hour (0–59) of `time_ms`.
    pub fn minute_of(time_ms: u64) -> u8 {
        // Below 60, so the cast cannot truncate.
        ((time_ms / MS_PER_MINUTE) % u64::from(MINUTES_PER_HOUR)) as u8
    }
}

impl fmt::Display for HourBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Days since 1970 fit an i64 for any u64 hour count divided by 24.
        let days = i64::try_from(self.0 / 24).unwrap_or(i64::MAX);
        let (year, month, day) = civil_from_days(days);
        write!(f, "{year:04}-{month:02}-{day:02}T{:02}", self.0 % 24)
    }
}

/// Minutes `from..to` of an hour (half-open, `to` at most 60).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteRange {
    pub from: u8,
    pub to: u8,
}

impl MinuteRange {
    /// The whole hour.
    pub const WHOLE_HOUR: Self = Self {
        from: 0,
        to: MINUTES_PER_HOUR,
    };

    pub fn contains(self, minute: u8) -> bool {
        (self.from..self.to).contains(&minute)
    }

    pub fn is_empty(self) -> bool {
        self.from >= self.to
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of `days` since 1970-01-01: `(year, month, day)`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_utc_hours_and_parse_back() {
        // 2026-12-06T20:14:10Z
        let time = 1_796_588_050_000;
        let bucket = HourBucket::of_ms(time);
        assert_eq!(bucket.to_string(), "2026-12-06T20");
        assert_eq!(HourBucket::parse("2026-12-06T20"), Some(bucket));
        assert_eq!(HourBucket::minute_of(time), 14);
        assert!(bucket.contains(bucket.start_ms()));
        assert!(!bucket.contains(bucket.start_ms() + MS_PER_HOUR));
        assert_eq!(HourBucket::of_ms(0).to_string(), "1970-01-01T00");
        assert_eq!(
            HourBucket::parse("2024-02-29T23").map(|bucket| bucket.to_string()),
            Some("2024-02-29T23".to_owned())
        );
    }

    #[test]
    fn malformed_or_impossible_keys_are_refused() {
        for bad in [
            "",
            "2026-12-06",
            "2026-12-06T24",
            "2026-13-01T00",
            "2026-02-29T00",
            "2026-12-06t20",
            "+026-12-06T20",
            "1969-12-31T23",
            "2026-12-06T20:00",
        ] {
            assert_eq!(HourBucket::parse(bad), None, "{bad}");
        }
    }
}
