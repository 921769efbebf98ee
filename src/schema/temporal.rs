//! Calendar arithmetic and the text forms of temporal values: ISO-8601 as Debezium's
//! `ZonedTimestamp`, `ZonedTime` and `Interval` write them, and PostgreSQL's own output form
//! (used where a value travels as text, e.g. range bounds). Pure functions, no allocation
//! beyond the output string.

use std::fmt::Write as _;

pub use sluice_api::civil_from_days;
use sluice_api::PgInterval;

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

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

/// `HH:MM:SS[.fraction]` with the fraction's trailing zeros dropped, as `java.time` does.
fn push_time_of_day(out: &mut String, micros: i64) {
    let micros = micros.rem_euclid(MICROS_PER_DAY);
    let secs = micros / 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    push_fraction(out, micros % 1_000_000);
}

fn push_fraction(out: &mut String, micros: i64) {
    if micros != 0 {
        let digits = format!("{micros:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
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

/// PostgreSQL's `date` output (ISO style): `2024-05-01`, `0044-03-15 BC`.
pub fn pg_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    if year <= 0 {
        format!("{:04}-{month:02}-{day:02} BC", 1 - year)
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

/// PostgreSQL's `time` output: `13:37:03.5`.
pub fn pg_time(micros: i64) -> String {
    let mut out = String::with_capacity(16);
    push_time_of_day(&mut out, micros);
    out
}

/// PostgreSQL's `timestamp` output (ISO style); `utc` adds the `+00` of a `timestamptz` shown
/// in UTC.
pub fn pg_timestamp(micros_since_epoch: i64, utc: bool) -> String {
    let days = micros_since_epoch.div_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let mut out = if year <= 0 {
        format!("{:04}-{month:02}-{day:02} ", 1 - year)
    } else {
        format!("{year:04}-{month:02}-{day:02} ")
    };
    push_time_of_day(&mut out, micros_since_epoch.rem_euclid(MICROS_PER_DAY));
    if utc {
        out.push_str("+00");
    }
    if year <= 0 {
        out.push_str(" BC");
    }
    out
}

/// PostgreSQL's `timetz` output: `13:37:03+02`, `13:37:03-05:30`.
pub fn pg_timetz(micros: i64, offset_seconds: i32) -> String {
    let mut out = pg_time(micros);
    out.push(if offset_seconds < 0 { '-' } else { '+' });
    let abs = offset_seconds.unsigned_abs();
    let (hours, minutes, seconds) = (abs / 3600, abs / 60 % 60, abs % 60);
    let _ = write!(out, "{hours:02}");
    if minutes != 0 || seconds != 0 {
        let _ = write!(out, ":{minutes:02}");
    }
    if seconds != 0 {
        let _ = write!(out, ":{seconds:02}");
    }
    out
}

/// PostgreSQL's `interval` output (postgres style): `1 year 2 mons 3 days 04:05:06.5`.
pub fn pg_interval(interval: PgInterval) -> String {
    let mut parts = Vec::with_capacity(4);
    let years = interval.months / 12;
    let months = interval.months % 12;
    let plural =
        |n: i32, one: &str, many: &str| format!("{n} {}", if n.abs() == 1 { one } else { many });
    if years != 0 {
        parts.push(plural(years, "year", "years"));
    }
    if months != 0 {
        parts.push(plural(months, "mon", "mons"));
    }
    if interval.days != 0 {
        parts.push(plural(interval.days, "day", "days"));
    }
    if interval.micros != 0 || parts.is_empty() {
        let mut clock = String::new();
        if interval.micros < 0 {
            clock.push('-');
        }
        let abs = interval.micros.unsigned_abs();
        let secs = abs / 1_000_000;
        let _ = write!(
            clock,
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        push_fraction(&mut clock, (abs % 1_000_000) as i64);
        parts.push(clock);
    }
    parts.join(" ")
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

    #[test]
    fn postgres_text_forms_match_the_server_output() {
        assert_eq!(
            pg_date(-719_528),
            "0000-01-01".replace("0000", "0001") + " BC"
        );
        assert_eq!(pg_timestamp(1_500_000, true), "1970-01-01 00:00:01.5+00");
        assert_eq!(pg_timetz(0, -19_800), "00:00:00-05:30");
        assert_eq!(
            pg_interval(PgInterval {
                months: 14,
                days: 1,
                micros: 3_600_000_000
            }),
            "1 year 2 mons 1 day 01:00:00"
        );
        assert_eq!(pg_interval(PgInterval::default()), "00:00:00");
    }
}
