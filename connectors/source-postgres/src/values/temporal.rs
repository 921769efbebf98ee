//! Dates, times, timestamps and intervals in the text forms the server prints with
//! `DateStyle = ISO` and `IntervalStyle = postgres` (the defaults), read digit by digit.
//!
//! Dates count days from 1970-01-01 in the proleptic Gregorian calendar, as PostgreSQL does;
//! `BC` years are astronomical year `1 - year` (1 BC is year 0).

use sluice_api::{Infinite, PgDate, PgInterval, PgTimestamp};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i128 = 86_400 * MICROS_PER_SECOND as i128;

/// `date`: `2024-02-29`, `0044-03-15 BC`, `infinity`, `-infinity`.
pub(super) fn parse_date(text: &str) -> Option<PgDate> {
    if let Some(infinite) = infinity(text) {
        return Some(infinite);
    }
    let mut cursor = Cursor::new(text);
    let (year, month, day) = cursor.date()?;
    let bc = cursor.era_bc();
    cursor.end()?;
    let days = civil_days(year, month, day, bc)?;
    i32::try_from(days).ok().map(Infinite::Finite)
}

/// `time`: `HH:MM:SS[.ffffff]` as microseconds since midnight; `24:00:00` is allowed.
pub(super) fn parse_time(text: &str) -> Option<i64> {
    let mut cursor = Cursor::new(text);
    let micros = cursor.time_of_day()?;
    cursor.end()?;
    Some(micros)
}

/// `timetz`: `HH:MM:SS[.ffffff]+HH[:MM[:SS]]` as local microseconds since midnight and the
/// offset in seconds east of UTC.
pub(super) fn parse_timetz(text: &str) -> Option<(i64, i32)> {
    let mut cursor = Cursor::new(text);
    let micros = cursor.time_of_day()?;
    let offset = cursor.offset()?;
    cursor.end()?;
    Some((micros, offset))
}

/// `timestamp`: `YYYY-MM-DD HH:MM:SS[.ffffff][ BC]` as microseconds since the epoch.
pub(super) fn parse_timestamp(text: &str) -> Option<PgTimestamp> {
    timestamp(text, false)
}

/// `timestamptz`: as `timestamp` with the session zone's offset before the era
/// (`2024-01-01 10:00:00.5+02`, `+05:30`, `-04:56:02`), as UTC microseconds since the epoch.
pub(super) fn parse_timestamptz(text: &str) -> Option<PgTimestamp> {
    timestamp(text, true)
}

fn timestamp(text: &str, with_offset: bool) -> Option<PgTimestamp> {
    if let Some(infinite) = infinity(text) {
        return Some(infinite);
    }
    let mut cursor = Cursor::new(text);
    let (year, month, day) = cursor.date()?;
    cursor.expect(b' ')?;
    let time = cursor.time_of_day()?;
    let offset = if with_offset { cursor.offset()? } else { 0 };
    let bc = cursor.era_bc();
    cursor.end()?;
    let days = civil_days(year, month, day, bc)?;
    let micros = i128::from(days) * MICROS_PER_DAY + i128::from(time)
        - i128::from(offset) * i128::from(MICROS_PER_SECOND);
    i64::try_from(micros).ok().map(Infinite::Finite)
}

/// `interval` in the `postgres` style: `1 year 2 mons 3 days 04:05:06.789`,
/// `-1 days +02:00:00`, `-00:00:01`, `00:00:00`; `infinity` and `-infinity` (PostgreSQL 17)
/// become the extreme values the server stores for them.
pub(super) fn parse_interval(text: &str) -> Option<PgInterval> {
    match text {
        "infinity" => {
            return Some(PgInterval {
                months: i32::MAX,
                days: i32::MAX,
                micros: i64::MAX,
            })
        }
        "-infinity" => {
            return Some(PgInterval {
                months: i32::MIN,
                days: i32::MIN,
                micros: i64::MIN,
            })
        }
        _ => {}
    }
    let mut interval = PgInterval::default();
    let mut seen_field = false;
    let mut seen_time = false;
    let mut tokens = text.split_ascii_whitespace();
    while let Some(token) = tokens.next() {
        seen_field = true;
        if token.contains(':') {
            if seen_time {
                return None;
            }
            seen_time = true;
            interval.micros = interval_time(token)?;
            continue;
        }
        let count: i32 = token.parse().ok()?;
        match tokens.next()? {
            "year" | "years" => {
                interval.months = interval.months.checked_add(count.checked_mul(12)?)?
            }
            "mon" | "mons" => interval.months = interval.months.checked_add(count)?,
            "day" | "days" => interval.days = interval.days.checked_add(count)?,
            _ => return None,
        }
    }
    seen_field.then_some(interval)
}

/// The time part of an interval: `[+|-]H+:MM:SS[.ffffff]`, hours unbounded by a day.
fn interval_time(token: &str) -> Option<i64> {
    let mut cursor = Cursor::new(token);
    let negative = cursor.eat(b'-');
    if !negative {
        cursor.eat(b'+');
    }
    let hours = cursor.digits(1, 10)?;
    cursor.expect(b':')?;
    let minutes = cursor.digits(2, 2)?;
    cursor.expect(b':')?;
    let seconds = cursor.digits(2, 2)?;
    let fraction = cursor.fraction()?;
    cursor.end()?;
    if minutes >= 60 || seconds >= 60 {
        return None;
    }
    let magnitude = (i128::from(hours) * 3600 + i128::from(minutes) * 60 + i128::from(seconds))
        * i128::from(MICROS_PER_SECOND)
        + i128::from(fraction);
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

fn infinity<T>(text: &str) -> Option<Infinite<T>> {
    match text {
        "infinity" => Some(Infinite::PositiveInfinity),
        "-infinity" => Some(Infinite::NegativeInfinity),
        _ => None,
    }
}

/// Days since the epoch of a date as printed (year of its era), checked against the calendar.
/// Year 1 BC is astronomical year 0; there is no year 0 in either era.
fn civil_days(year: i64, month: u32, day: u32, bc: bool) -> Option<i64> {
    let year = match (year, bc) {
        (0, _) => return None,
        (_, true) => 1 - year,
        (_, false) => year,
    };
    (day <= days_in_month(year, month)).then(|| days_from_civil(year, month, day))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (any year, month 1-12, valid day), by
/// counting 400-year eras that start on March 1st so the leap day ends each year.
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn is_leap_year(astronomical_year: i64) -> bool {
    astronomical_year % 4 == 0 && (astronomical_year % 100 != 0 || astronomical_year % 400 == 0)
}

fn days_in_month(astronomical_year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(astronomical_year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A read position in ASCII text; every method leaves the position unspecified on `None`.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.bytes.get(self.pos) == Some(&byte);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn end(&self) -> Option<()> {
        (self.pos == self.bytes.len()).then_some(())
    }

    /// Between `min` and `max` (at most 18) decimal digits, greedily.
    fn digits(&mut self, min: usize, max: usize) -> Option<u64> {
        let mut value = 0u64;
        let start = self.pos;
        while self.pos - start < max {
            match self.bytes.get(self.pos) {
                Some(&b) if b.is_ascii_digit() => {
                    value = value * 10 + u64::from(b - b'0');
                    self.pos += 1;
                }
                _ => break,
            }
        }
        (self.pos - start >= min).then_some(value)
    }

    /// `YYYY-MM-DD` with a year of 4 to 7 digits (the server prints up to 5874897). The day is
    /// checked against its month by [`civil_days`], once the era is known.
    fn date(&mut self) -> Option<(i64, u32, u32)> {
        let year = i64::try_from(self.digits(4, 7)?).ok()?;
        self.expect(b'-')?;
        let month = u32::try_from(self.digits(2, 2)?).ok()?;
        self.expect(b'-')?;
        let day = u32::try_from(self.digits(2, 2)?).ok()?;
        if !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        Some((year, month, day))
    }

    /// ` BC` after a date or timestamp.
    fn era_bc(&mut self) -> bool {
        if self
            .bytes
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(b" BC"))
        {
            self.pos += 3;
            true
        } else {
            false
        }
    }

    /// `HH:MM:SS[.ffffff]` as microseconds; `24:00:00` is the one value past the last second.
    fn time_of_day(&mut self) -> Option<i64> {
        let hours = self.digits(2, 2)?;
        self.expect(b':')?;
        let minutes = self.digits(2, 2)?;
        self.expect(b':')?;
        let seconds = self.digits(2, 2)?;
        let fraction = self.fraction()?;
        if minutes >= 60 || seconds >= 60 || hours > 24 {
            return None;
        }
        let micros = ((hours * 60 + minutes) * 60 + seconds) * MICROS_PER_SECOND as u64 + fraction;
        if micros > 24 * 3600 * MICROS_PER_SECOND as u64 {
            return None;
        }
        i64::try_from(micros).ok()
    }

    /// An optional `.f` to `.ffffff` (the server trims trailing zeros), as microseconds.
    fn fraction(&mut self) -> Option<u64> {
        if !self.eat(b'.') {
            return Some(0);
        }
        let start = self.pos;
        let value = self.digits(1, 6)?;
        let scale = 6 - (self.pos - start);
        Some(value * 10u64.pow(scale as u32))
    }

    /// A zone offset `+HH`, `+HH:MM` or `+HH:MM:SS` (ISO sign: east of UTC is positive).
    fn offset(&mut self) -> Option<i32> {
        let negative = match self.bytes.get(self.pos) {
            Some(b'+') => false,
            Some(b'-') => true,
            _ => return None,
        };
        self.pos += 1;
        let hours = self.digits(2, 2)?;
        let mut minutes = 0;
        let mut seconds = 0;
        if self.eat(b':') {
            minutes = self.digits(2, 2)?;
            if self.eat(b':') {
                seconds = self.digits(2, 2)?;
            }
        }
        if minutes >= 60 || seconds >= 60 {
            return None;
        }
        let magnitude = i32::try_from((hours * 60 + minutes) * 60 + seconds).ok()?;
        Some(if negative { -magnitude } else { magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn dates_count_days_from_the_epoch_including_leap_days() {
        assert_eq!(parse_date("1970-01-01"), Some(Infinite::Finite(0)));
        assert_eq!(parse_date("2024-02-29"), Some(Infinite::Finite(19_782)));
        assert_eq!(parse_date("2000-03-01"), Some(Infinite::Finite(11_017)));
        assert_eq!(parse_date("1969-12-31"), Some(Infinite::Finite(-1)));
        assert_eq!(
            parse_date("5874897-12-31"),
            Some(Infinite::Finite(2_145_042_905))
        );
    }

    #[test]
    fn bc_dates_use_astronomical_years() {
        // 0001-01-01 BC is year 0, a leap year; 4713-11-24 BC is the earliest date the server accepts (verified with `date - date` on a server).
        assert_eq!(
            parse_date("0001-12-31 BC"),
            Some(Infinite::Finite(-719_163))
        );
        assert!(parse_date("0001-02-29 BC").is_some());
        assert_eq!(
            parse_date("4713-11-24 BC"),
            Some(Infinite::Finite(-2_440_222))
        );
        assert_eq!(
            parse_date("0044-03-15 BC"),
            Some(Infinite::Finite(-735_160))
        );
    }

    #[test]
    fn date_infinities_and_impossible_dates() {
        assert_eq!(parse_date("infinity"), Some(Infinite::PositiveInfinity));
        assert_eq!(parse_date("-infinity"), Some(Infinite::NegativeInfinity));
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "0000-01-01",
            "24-01-01",
            "2024-01-01 AD",
            "2024-01-01 BC x",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn times_are_microseconds_since_midnight_up_to_24_hours() {
        assert_eq!(parse_time("00:00:00"), Some(0));
        assert_eq!(parse_time("12:34:56.789"), Some(45_296_789_000));
        assert_eq!(parse_time("23:59:59.999999"), Some(DAY - 1));
        assert_eq!(parse_time("24:00:00"), Some(DAY));
        for bad in [
            "24:00:00.000001",
            "12:60:00",
            "12:00:60",
            "1:00:00",
            "12:00:00.1234567",
            "12:00:00.",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn timetz_keeps_local_time_and_offset_east_of_utc() {
        assert_eq!(
            parse_timetz("12:00:00+05:30"),
            Some((43_200_000_000, 19_800))
        );
        assert_eq!(
            parse_timetz("23:59:59.999999-03:00:07"),
            Some((DAY - 1, -10_807))
        );
        assert_eq!(parse_timetz("00:00:00-15:59"), Some((0, -57_540)));
        assert_eq!(parse_timetz("00:00:00+00"), Some((0, 0)));
        assert_eq!(parse_timetz("00:00:00"), None);
        assert_eq!(parse_timetz("00:00:00+5"), None);
    }

    #[test]
    fn timestamps_cover_fractions_bc_and_infinity() {
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00"),
            Some(Infinite::Finite(0))
        );
        assert_eq!(
            parse_timestamp("2024-01-01 10:00:00.5"),
            Some(Infinite::Finite(1_704_103_200_500_000))
        );
        assert_eq!(
            parse_timestamp("294247-01-10 04:00:54.775807"),
            Some(Infinite::Finite(i64::MAX))
        );
        // The server's last timestamps (to 294276 AD) overflow microseconds since 1970.
        assert_eq!(parse_timestamp("294276-12-31 23:59:59.999999"), None);
        assert_eq!(
            parse_timestamp("0044-03-15 10:00:00.5 BC"),
            Some(Infinite::Finite(-735_160 * DAY + 36_000_500_000))
        );
        assert_eq!(
            parse_timestamp("-infinity"),
            Some(Infinite::NegativeInfinity)
        );
        assert_eq!(parse_timestamp("2024-01-01T10:00:00"), None);
        assert_eq!(parse_timestamp("2024-01-01 10:00:00+00"), None);
    }

    #[test]
    fn timestamptz_offsets_with_minutes_and_seconds_convert_to_utc() {
        let utc = parse_timestamptz("2024-01-01 10:00:00+00");
        assert_eq!(utc, Some(Infinite::Finite(1_704_103_200_000_000)));
        assert_eq!(parse_timestamptz("2024-01-01 12:00:00+02"), utc);
        assert_eq!(parse_timestamptz("2024-01-01 15:30:00+05:30"), utc);
        assert_eq!(parse_timestamptz("2024-01-01 05:00:00-05"), utc);
        // LMT offsets of old dates carry seconds: New York in 1800.
        assert_eq!(
            parse_timestamptz("1799-12-31 19:03:58-04:56:02"),
            parse_timestamptz("1800-01-01 00:00:00+00")
        );
        assert_eq!(
            parse_timestamptz("0044-03-15 10:00:00.5+00 BC"),
            Some(Infinite::Finite(-735_160 * DAY + 36_000_500_000))
        );
        assert_eq!(
            parse_timestamptz("infinity"),
            Some(Infinite::PositiveInfinity)
        );
        assert_eq!(parse_timestamptz("2024-01-01 10:00:00"), None);
        assert_eq!(parse_timestamptz("2024-01-01 10:00:00+02:60"), None);
    }

    fn interval(months: i32, days: i32, micros: i64) -> Option<PgInterval> {
        Some(PgInterval {
            months,
            days,
            micros,
        })
    }

    #[test]
    fn intervals_in_the_postgres_style_split_into_months_days_and_micros() {
        assert_eq!(
            parse_interval("1 year 2 mons 3 days 04:05:06.789"),
            interval(14, 3, 14_706_789_000)
        );
        assert_eq!(parse_interval("00:00:00"), interval(0, 0, 0));
        assert_eq!(parse_interval("1 day"), interval(0, 1, 0));
        assert_eq!(parse_interval("10 mons"), interval(10, 0, 0));
        assert_eq!(
            parse_interval("-1 days +02:00:00"),
            interval(0, -1, 7_200_000_000)
        );
        assert_eq!(parse_interval("-1 mons +1 day"), interval(-1, 1, 0));
        assert_eq!(parse_interval("-00:00:01"), interval(0, 0, -1_000_000));
        assert_eq!(
            parse_interval("-1 years -2 mons -3 days -04:05:06"),
            interval(-14, -3, -14_706_000_000)
        );
    }

    #[test]
    fn interval_extremes_and_infinities_fit() {
        assert_eq!(
            parse_interval("178956970 years 7 mons"),
            interval(i32::MAX, 0, 0)
        );
        assert_eq!(
            parse_interval("-178956970 years -8 mons"),
            interval(i32::MIN, 0, 0)
        );
        assert_eq!(
            parse_interval("2562047788:00:54.775807"),
            interval(0, 0, i64::MAX)
        );
        assert_eq!(
            parse_interval("-2562047788:00:54.775808"),
            interval(0, 0, i64::MIN)
        );
        assert_eq!(
            parse_interval("infinity"),
            interval(i32::MAX, i32::MAX, i64::MAX)
        );
        assert_eq!(
            parse_interval("-infinity"),
            interval(i32::MIN, i32::MIN, i64::MIN)
        );
    }

    #[test]
    fn malformed_intervals_are_rejected() {
        for bad in [
            "",
            "1",
            "1 fortnight",
            "1 day 2",
            "01:00:00 02:00:00",
            "178956971 years",
            "2562047789:00:00",
            "1:2:3",
            "@ 1 day",
        ] {
            assert_eq!(parse_interval(bad), None, "{bad:?} accepted");
        }
    }
}
