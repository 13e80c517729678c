//! The windows a summary covers (`1h`, `24h`, `7d`) and the buckets and minutes each asks.
//!
//! A window of N hours is the last N × 60 minutes, the current minute included: the
//! current hour's minutes up to now, the N − 1 hours before it whole, and the tail of the
//! hour before those (its minutes after the current minute). So `1h` at 20:14 is 19:15 to
//! 20:14 inclusive, from buckets `…T19` (minutes 15–59) and `…T20` (0–14). A window asks
//! N + 1 buckets, N when the current minute is the hour's last.

use std::fmt;
use std::str::FromStr;

use super::bucket::{HourBucket, MinuteRange};

const MS_PER_MINUTE: u64 = 60_000;
const MINUTES_PER_HOUR: u64 = 60;

/// A summary window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last 60 minutes.
    Hour,
    /// The last 24 hours.
    Day,
    /// The last 7 days (168 hours).
    Week,
}

/// A window other than `1h`, `24h` or `7d`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("window: expected one of 1h, 24h, 7d, got {0:?}")]
pub struct UnknownWindow(pub String);

impl UnknownWindow {
    /// The parameter it is about.
    pub const FIELD: &'static str = "window";
}

/// The buckets and minutes of a window at some instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSpan {
    /// First millisecond covered (the start of the window's first minute).
    pub from_ms: u64,
    /// The instant the window ends at (now).
    pub to_ms: u64,
    /// Each bucket asked with the minutes of it inside the window, oldest first.
    pub buckets: Vec<(HourBucket, MinuteRange)>,
}

impl Window {
    pub fn parse(text: &str) -> Result<Self, UnknownWindow> {
        match text {
            "1h" => Ok(Self::Hour),
            "24h" => Ok(Self::Day),
            "7d" => Ok(Self::Week),
            other => Err(UnknownWindow(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    /// Its length in hours.
    pub fn hours(self) -> u64 {
        match self {
            Self::Hour => 1,
            Self::Day => 24,
            Self::Week => 7 * 24,
        }
    }

    /// The buckets and minutes this window covers at `now_ms`.
    pub fn span(self, now_ms: u64) -> WindowSpan {
        let last_minute = now_ms / MS_PER_MINUTE;
        let first_minute = (last_minute + 1).saturating_sub(self.hours() * MINUTES_PER_HOUR);
        let first_hour = first_minute / MINUTES_PER_HOUR;
        let last_hour = last_minute / MINUTES_PER_HOUR;
        let buckets = (first_hour..=last_hour)
            .map(|hour| {
                let from = if hour == first_hour {
                    first_minute % MINUTES_PER_HOUR
                } else {
                    0
                };
                let to = if hour == last_hour {
                    last_minute % MINUTES_PER_HOUR + 1
                } else {
                    MINUTES_PER_HOUR
                };
                // Both at most 60: the casts cannot truncate.
                let minutes = MinuteRange {
                    from: from as u8,
                    to: to as u8,
                };
                (HourBucket::from_hours(hour), minutes)
            })
            .filter(|(_, minutes)| !minutes.is_empty())
            .collect();
        WindowSpan {
            from_ms: first_minute * MS_PER_MINUTE,
            to_ms: now_ms,
            buckets,
        }
    }
}

impl FromStr for Window {
    type Err = UnknownWindow;

    fn from_str(text: &str) -> Result<Self, UnknownWindow> {
        Self::parse(text)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T20:14:10Z
    const NOW: u64 = 1_796_588_050_000;

    #[test]
    fn parses_the_three_windows_and_names_the_field_otherwise() {
        for window in [Window::Hour, Window::Day, Window::Week] {
            assert_eq!(Window::parse(window.as_str()), Ok(window));
        }
        let error = Window::parse("3h").unwrap_err();
        assert_eq!(error, UnknownWindow("3h".to_owned()));
        assert!(error.to_string().starts_with("window:"), "{error}");
    }

    #[test]
    fn an_hour_is_the_tail_of_the_previous_bucket_and_the_head_of_this_one() {
        let span = Window::Hour.span(NOW);
        let keys: Vec<(String, MinuteRange)> = span
            .buckets
            .iter()
            .map(|(bucket, minutes)| (bucket.to_string(), *minutes))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("2026-12-06T19".to_owned(), MinuteRange { from: 15, to: 60 }),
                ("2026-12-06T20".to_owned(), MinuteRange { from: 0, to: 15 }),
            ]
        );
        assert_eq!(span.to_ms - span.from_ms, 59 * 60_000 + 10_000);
    }

    #[test]
    fn longer_windows_cover_every_hour_between() {
        let day = Window::Day.span(NOW);
        assert_eq!(day.buckets.len(), 25);
        assert_eq!(day.buckets[0].1, MinuteRange { from: 15, to: 60 });
        assert!(
            day.buckets[1..24]
                .iter()
                .all(|(_, m)| *m == MinuteRange::WHOLE_HOUR)
        );
        let week = Window::Week.span(NOW);
        assert_eq!(week.buckets.len(), 169);
        // At the hour's last minute the oldest bucket is not asked at all.
        let at_59 = HourBucket::parse("2026-12-06T20").unwrap().start_ms() + 59 * 60_000;
        let week = Window::Week.span(at_59);
        assert_eq!(week.buckets.len(), 168);
        assert!(
            week.buckets
                .iter()
                .all(|(_, m)| *m == MinuteRange::WHOLE_HOUR)
        );
    }
}
