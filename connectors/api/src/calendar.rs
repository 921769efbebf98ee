//! Calendar arithmetic shared by every encoder that prints dates: day counts to proleptic
//! Gregorian dates, and PostgreSQL's own output forms of temporal values (what a value travelling
//! as text, or written into a PostgreSQL target, looks like).

use std::fmt::Write as _;

use crate::PgInterval;

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01, proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days_from_civil inverse: eras of 400 years, March-based years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `HH:MM:SS[.fraction]` with the fraction's trailing zeros dropped, as `java.time` does.
pub fn push_time_of_day(out: &mut String, micros: i64) {
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

pub fn push_fraction(out: &mut String, micros: i64) {
    if micros != 0 {
        let digits = format!("{micros:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
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
    fn day_counts_become_gregorian_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(-719_528), (0, 1, 1));
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
