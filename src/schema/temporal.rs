//! Calendar arithmetic and the text forms of temporal values: ISO-8601 as Debezium's
//! `ZonedTimestamp`, `ZonedTime` and `Interval` write them, and PostgreSQL's own output form
//! (used where a value travels as text, e.g. range bounds). Pure functions, no allocation
//! beyond the output string.

use std::fmt::Write as _;

pub use sluice_api::calendar::{civil_from_days, MICROS_PER_DAY};
use sluice_api::calendar::{push_fraction, push_time_of_day};
use sluice_api::PgInterval;

/// Debezium's `MicroDuration` counts a month as the average month: 365.25 / 12 = 30.4375
/// days, which is 2 629 800 seconds.
pub const MICROS_PER_AVERAGE_MONTH: i64 = 2_629_800_000_000;

/// Debezium's encoding of `timestamp 'infinity'` (PostgreSQL JDBC's `DATE_POSITIVE_INFINITY`).
pub const TIMESTAMP_POSITIVE_INFINITY: i64 = 9_223_372_036_825_200_000;
/// Debezium's encoding of `timestamp '-infinity'` (JDBC's `DATE_NEGATIVE_INFINITY`).
pub const TIMESTAMP_NEGATIVE_INFINITY: i64 = -9_223_372_036_832_400_000;

/// `YYYY-MM-DD` as `java.time` prints it: a `+` and more digits past year 9999, a `-` before it.
fn push_iso_date(out: &mut String, days: i64) {
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        let _ = write!(out, "+{year}");
    } else if year < 0 {
        let _ = write!(out, "-{:04}", -year);
    } else {
        let _ = write!(out, "{year:04}");
    }
    let _ = write!(out, "-{month:02}-{day:02}");
}

/// `io.debezium.time.ZonedTimestamp`: the instant in UTC, e.g. `2024-05-01T12:30:00.25Z`.
pub fn zoned_timestamp(micros_since_epoch: i64) -> String {
    let mut out = String::with_capacity(32);
    push_iso_date(&mut out, micros_since_epoch.div_euclid(MICROS_PER_DAY));
    out.push('T');
    push_time_of_day(&mut out, micros_since_epoch.rem_euclid(MICROS_PER_DAY));
    out.push('Z');
    out
}

/// `io.debezium.time.ZonedTime`: the time normalised to UTC, e.g. `10:15:30.5Z`.
pub fn zoned_time(micros: i64, offset_seconds: i32) -> String {
    let utc = micros - i64::from(offset_seconds) * 1_000_000;
    let mut out = String::with_capacity(20);
    push_time_of_day(&mut out, utc);
    out.push('Z');
    out
}

/// `io.debezium.time.MicroDuration`: months at their average length, saturating.
pub fn interval_micros(interval: PgInterval) -> i64 {
    i64::from(interval.months)
        .saturating_mul(MICROS_PER_AVERAGE_MONTH)
        .saturating_add(i64::from(interval.days).saturating_mul(MICROS_PER_DAY))
        .saturating_add(interval.micros)
}

/// `io.debezium.time.Interval`: `P<y>Y<m>M<d>DT<h>H<m>M<s>S`, every component written.
pub fn interval_iso(interval: PgInterval) -> String {
    let years = interval.months / 12;
    let months = interval.months % 12;
    let hours = interval.micros / 3_600_000_000;
    let minutes = interval.micros / 60_000_000 % 60;
    let micros = interval.micros % 60_000_000;
    let mut out = format!("P{years}Y{months}M{}DT{hours}H{minutes}M", interval.days);
    push_seconds(&mut out, micros);
    out.push('S');
    out
}

/// Signed seconds with a trimmed fraction, from microseconds.
fn push_seconds(out: &mut String, micros: i64) {
    if micros < 0 {
        out.push('-');
    }
    let abs = micros.unsigned_abs();
    let _ = write!(out, "{}", abs / 1_000_000);
    push_fraction(out, (abs % 1_000_000) as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_map_to_gregorian_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_844), (2024, 5, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn zoned_timestamps_are_utc_with_a_trimmed_fraction() {
        let micros = 19_844 * MICROS_PER_DAY + 45_000_250_000;
        assert_eq!(zoned_timestamp(micros), "2024-05-01T12:30:00.25Z");
        assert_eq!(zoned_timestamp(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(zoned_time(3_600_000_000, 7200), "23:00:00Z");
    }

    #[test]
    fn micro_durations_count_a_month_as_30_4375_days() {
        let iv = PgInterval {
            months: 1,
            days: 1,
            micros: 1,
        };
        assert_eq!(interval_micros(iv), 2_629_800_000_000 + MICROS_PER_DAY + 1);
        assert_eq!(
            interval_iso(PgInterval {
                months: 14,
                days: 3,
                micros: 4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000
            }),
            "P1Y2M3DT4H5M6.5S"
        );
    }
}
