//! Timestamps of log lines as numbers: primaryd's RFC 3339 (UTC), FRR's and BIRD's local
//! "YYYY/MM/DD HH:MM:SS.mmm".

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil), so
/// midnight and month ends are no edge.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of a date and a time of day with a fraction.
fn seconds(date: [i64; 3], hh: i64, mm: i64, sec: f64) -> f64 {
    let days = days_from_civil(date[0], date[1], date[2]);
    (days * 86_400 + hh * 3600 + mm * 60) as f64 + sec
}

/// RFC 3339 UTC (`2026-11-22T06:07:01.519234Z`) to Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    Some(seconds([y, m, day], hh, mm, sec) * 1000.0)
}

/// The timestamp FRR and BIRD put first on a log line, "YYYY/MM/DD HH:MM:SS.mmm" (FRR with
/// `log timestamp precision 3`) or "YYYY-MM-DD HH:MM:SS.mmm" (BIRD), as seconds since the
/// epoch of the local clock: only differences between two lines mean anything.
pub fn log_time(line: &str) -> Option<f64> {
    let (date, rest) = line.split_once(' ')?;
    let time = rest.split_whitespace().next()?;
    let d: Vec<i64> = date
        .split(['/', '-'])
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let frac: f64 = format!("0.{frac}").parse().ok()?;
    Some(seconds([d[0], d[1], d[2]], t[0], t[1], t[2] as f64 + frac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500.0));
        assert_eq!(
            parse_rfc3339_ms("2000-03-01T00:00:00Z"),
            Some(951_868_800_000.0)
        );
        assert_eq!(parse_rfc3339_ms("2000-03-01T00:00:00"), None);
    }

    #[test]
    fn router_log_times_across_midnight_and_formats() {
        let a = log_time("2026/02/28 23:59:59.750 BGP: x").unwrap();
        let b = log_time("2026-03-01 00:00:00.250 <INFO> y").unwrap();
        assert!((b - a - 0.5).abs() < 1e-6, "{a} {b}");
        assert_eq!(log_time("2000/03/01 00:00:00 z"), Some(951_868_800.0));
        assert_eq!(log_time("not a time"), None);
    }
}
