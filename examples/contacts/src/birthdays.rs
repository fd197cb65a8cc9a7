//! Upcoming birthdays. Someone born on February 29 celebrates on February 28 in other years
//! (the day that still falls in February).

use chrono::{Datelike, Days, NaiveDate};

/// The birthday's anniversary in `year`.
fn anniversary(birthday: NaiveDate, year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, birthday.month(), birthday.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
}

/// The first celebration on or after `today`.
pub fn next_birthday(birthday: NaiveDate, today: NaiveDate) -> Option<NaiveDate> {
    let this_year = anniversary(birthday, today.year())?;
    if this_year >= today {
        Some(this_year)
    } else {
        anniversary(birthday, today.year() + 1)
    }
}

/// The celebration within `today ..= today + days`, if there is one.
pub fn upcoming(birthday: NaiveDate, today: NaiveDate, days: u32) -> Option<NaiveDate> {
    let last = today.checked_add_days(Days::new(days.into()))?;
    next_birthday(birthday, today).filter(|next| *next <= last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).expect("a date")
    }

    #[test]
    fn the_window_wraps_at_the_years_end() {
        let today = date(2026, 12, 30);
        assert_eq!(upcoming(date(1990, 1, 2), today, 7), Some(date(2027, 1, 2)));
        assert_eq!(
            upcoming(date(1990, 12, 31), today, 7),
            Some(date(2026, 12, 31))
        );
        assert_eq!(upcoming(date(1990, 1, 7), today, 7), None);
        assert_eq!(upcoming(date(1990, 1, 6), today, 7), Some(date(2027, 1, 6)));
    }

    #[test]
    fn today_and_the_last_day_are_included() {
        let today = date(2026, 6, 10);
        assert_eq!(upcoming(date(1980, 6, 10), today, 0), Some(today));
        assert_eq!(
            upcoming(date(1980, 6, 17), today, 7),
            Some(date(2026, 6, 17))
        );
        assert_eq!(upcoming(date(1980, 6, 18), today, 7), None);
        assert_eq!(upcoming(date(1980, 6, 9), today, 7), None);
    }

    #[test]
    fn february_29_is_celebrated_on_the_28th_in_other_years() {
        let leapling = date(2000, 2, 29);
        assert_eq!(
            upcoming(leapling, date(2026, 2, 25), 7),
            Some(date(2026, 2, 28))
        );
        assert_eq!(upcoming(leapling, date(2026, 3, 1), 7), None);
        assert_eq!(
            upcoming(leapling, date(2028, 2, 25), 7),
            Some(date(2028, 2, 29))
        );
        // Passed this year: next year's, which is a leap year.
        assert_eq!(
            next_birthday(leapling, date(2027, 3, 1)),
            Some(date(2028, 2, 29))
        );
        // From December, across the year's end into a non-leap February.
        assert_eq!(
            upcoming(leapling, date(2026, 12, 30), 60),
            Some(date(2027, 2, 28))
        );
    }

    #[test]
    fn a_whole_year_finds_everyone() {
        let today = date(2026, 3, 1);
        assert_eq!(
            upcoming(date(1970, 2, 28), today, 365),
            Some(date(2027, 2, 28))
        );
        assert_eq!(upcoming(date(1970, 2, 28), today, 363), None);
    }
}
