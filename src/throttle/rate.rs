//! DRF's rate syntax (`100/hour`, `10/minute`, `5/second`, `1000/day`: DRF reads only the unit's
//! first letter), extended with a count before the unit (`10/15m`: 10 per 15 minutes), and
//! `off`.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    /// `None` for `off`.
    pub fn parse(text: &str) -> Result<Option<Rate>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || {
            format!("expected a rate such as 100/hour, 10/15m or 5/second, or off; got {text:?}")
        };
        let (count, period) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let digits: String = period.chars().take_while(char::is_ascii_digit).collect();
        let times: u64 = match digits.as_str() {
            "" => 1,
            digits => digits.parse().map_err(|_| bad())?,
        };
        let unit = match period[digits.len()..].chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 || times == 0 || times > 366 {
            return Err(bad());
        }
        Ok(Some(Rate {
            count,
            period: Duration::from_secs(times * unit),
        }))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.period.as_secs();
        let (times, unit) = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")]
            .into_iter()
            .find(|(unit, _)| seconds.is_multiple_of(*unit))
            .map_or((seconds, "s"), |(size, unit)| (seconds / size, unit));
        match times {
            1 => write!(f, "{}/{unit}", self.count),
            times => write!(f, "{}/{times}{unit}", self.count),
        }
    }
}

/// DRF's 429 detail: "Request was throttled. Expected available in N seconds." (N rounded up;
/// "1 second." for one).
pub fn throttled_detail(wait_seconds: u64) -> String {
    let unit = if wait_seconds == 1 {
        "second"
    } else {
        "seconds"
    };
    format!("Request was throttled. Expected available in {wait_seconds} {unit}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_drfs_syntax_and_the_extension() {
        let rate = |text| Rate::parse(text).expect(text).expect("a rate");
        assert_eq!(rate("100/hour").period, Duration::from_secs(3600));
        assert_eq!(rate("100/h").count, 100);
        assert_eq!(rate("10/minute").period, Duration::from_secs(60));
        assert_eq!(rate("5/second").period, Duration::from_secs(1));
        assert_eq!(rate("1000/day").period, Duration::from_secs(86_400));
        assert_eq!(rate("10/15m").period, Duration::from_secs(900));
        assert_eq!(Rate::parse("off"), Ok(None));
        for bad in [
            "", "10", "10/", "x/h", "0/h", "10/15", "10/0m", "10/w", "-1/h",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(rate("10/15m").to_string(), "10/15m");
        assert_eq!(rate("100/hour").to_string(), "100/h");
        assert_eq!(rate("3/90s").to_string(), "3/90s");
    }

    #[test]
    fn the_detail_is_drfs() {
        assert_eq!(
            throttled_detail(1),
            "Request was throttled. Expected available in 1 second."
        );
        assert_eq!(
            throttled_detail(42),
            "Request was throttled. Expected available in 42 seconds."
        );
    }
}
