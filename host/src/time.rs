//! The time base shared by every module: 90 kHz ticks.
//!
//! 90 kHz is the RTP clock of H.264, so media timestamps never need rounding, and it is fine
//! enough (11 µs) to carry wall-clock times too. Wall times are ticks since the Unix epoch (UTC);
//! media times are ticks since the start of a run. See `docs/archive.md`, "Time".

use std::fmt;
use std::str::FromStr;

/// Ticks per second of every time value in openva.
pub const TICKS_PER_SEC: i64 = 90_000;

/// Ticks per day (86,400 seconds: UTC days, as AVA counts retention and day precision).
pub const DAY_90K: i64 = 86_400 * TICKS_PER_SEC;

/// A wall-clock instant: 90 kHz ticks since 1970-01-01T00:00:00Z.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time90k(pub i64);

/// Why a time or duration given by a user could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// Not an ISO 8601 UTC instant or date.
    #[error("'{0}' is not an ISO 8601 time (expected e.g. 2026-11-23T05:00:00Z or 2026-11-23)")]
    BadTime(String),
    /// Not an ISO 8601 duration.
    #[error("'{0}' is not an ISO 8601 duration (expected e.g. PT30S or P7D)")]
    BadDuration(String),
    /// Outside the range a 90 kHz i64 or a calendar can hold.
    #[error("'{0}' is out of range")]
    OutOfRange(String),
}

impl Time90k {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system(std::time::SystemTime::now())
    }

    /// Converts from the OS clock; times before 1970 map to negative ticks.
    pub fn from_system(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Time90k(duration_to_ticks(d)),
            Err(e) => Time90k(-duration_to_ticks(e.duration())),
        }
    }

    /// Milliseconds since the epoch, rounded down (the simulated camera's frame stamp unit).
    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(90)
    }

    /// From milliseconds since the epoch.
    pub fn from_millis(ms: i64) -> Self {
        Time90k(ms * 90)
    }

    /// As a `jiff::Timestamp`, for calendar arithmetic and formatting.
    pub fn to_jiff(self) -> jiff::Timestamp {
        let secs = self.0.div_euclid(TICKS_PER_SEC);
        let nanos = (self.0.rem_euclid(TICKS_PER_SEC) * 1_000_000_000 / TICKS_PER_SEC) as i32;
        jiff::Timestamp::new(secs, nanos).unwrap_or(jiff::Timestamp::MAX)
    }

    /// From a `jiff::Timestamp` (sub-tick nanoseconds are truncated toward the past).
    pub fn from_jiff(t: jiff::Timestamp) -> Self {
        let secs = t.as_second();
        let nanos = i64::from(t.subsec_nanosecond());
        let sub = (nanos * TICKS_PER_SEC).div_euclid(1_000_000_000);
        Time90k(secs * TICKS_PER_SEC + sub)
    }

    /// Parses an ISO 8601 UTC instant (`2026-11-23T05:00:00.250Z`, offsets allowed) or a date
    /// (`2026-11-23`, meaning midnight UTC), as AVA's clients send both.
    pub fn parse_iso(s: &str) -> Result<Self, TimeError> {
        let s = s.trim();
        if let Ok(t) = jiff::Timestamp::from_str(s) {
            return Ok(Self::from_jiff(t));
        }
        if let Ok(d) = jiff::civil::Date::from_str(s) {
            let t = d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|_| TimeError::OutOfRange(s.to_owned()))?;
            return Ok(Self::from_jiff(t.timestamp()));
        }
        Err(TimeError::BadTime(s.to_owned()))
    }

    /// Formats as `YYYY-MM-DDThh:mm:ss.sssZ` (UTC, milliseconds), AVA's `full` precision.
    pub fn to_iso_millis(self) -> String {
        let ts = self.to_jiff();
        let dt = ts.to_zoned(jiff::tz::TimeZone::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }
}

/// A length of time in 90 kHz ticks: what separates two [`Time90k`]s, and what segment
/// lengths, retention periods, sampling intervals and ranges are measured in. Kept apart from
/// instants so an instant is never passed where a length is meant (Moonfire's `base/time.rs`
/// makes the same split).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration90k(pub i64);

impl Duration90k {
    /// No time at all.
    pub const ZERO: Duration90k = Duration90k(0);

    /// Whole seconds.
    pub const fn from_secs(s: i64) -> Self {
        Duration90k(s * TICKS_PER_SEC)
    }

    /// Whole days of 24 hours (AVA counts retention in such days).
    pub const fn from_days(d: i64) -> Self {
        Duration90k(d * DAY_90K)
    }

    /// Seconds, as a float (rates and progress).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TICKS_PER_SEC as f64
    }

    /// As a std duration; negative lengths count as zero.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos((self.0.max(0) as u128 * 1_000_000_000 / TICKS_PER_SEC as u128) as u64)
    }

    /// From a std duration, saturating.
    pub fn from_std(d: std::time::Duration) -> Self {
        Duration90k(duration_to_ticks(d))
    }

    /// Parses an ISO 8601 duration (`PT30S`, `P7D`), as AVA writes them.
    pub fn parse_iso(s: &str) -> Result<Self, TimeError> {
        parse_iso_duration(s).map(Duration90k)
    }

    /// An ISO 8601 duration that may be negative (`-PT5S`), as AVA's signal offsets are.
    pub fn parse_iso_signed(s: &str) -> Result<Self, TimeError> {
        let t = s.trim();
        match t.strip_prefix('-') {
            Some(rest) => Self::parse_iso(rest).map(|d| Duration90k(-d.0)),
            None => Self::parse_iso(t.strip_prefix('+').unwrap_or(t)),
        }
    }

    /// `PT30S`: whole seconds, as AVA echoes segment lengths.
    pub fn to_iso_secs(self) -> String {
        format_iso_duration(self.0)
    }

    /// `PT2.96S`: to the millisecond, without trailing zeros (`-PT5S` when negative).
    pub fn to_iso_millis(self) -> String {
        if self.0 < 0 {
            format!("-{}", format_iso_duration_ms(self.0.saturating_neg()))
        } else {
            format_iso_duration_ms(self.0)
        }
    }

    /// `P7D` for whole days, else whole seconds: AVA's retention periods.
    pub fn to_iso_period(self) -> String {
        format_iso_period(self.0)
    }
}

impl std::ops::Add for Duration90k {
    type Output = Duration90k;
    fn add(self, o: Duration90k) -> Duration90k {
        Duration90k(self.0 + o.0)
    }
}

impl std::ops::AddAssign for Duration90k {
    fn add_assign(&mut self, o: Duration90k) {
        self.0 += o.0;
    }
}

impl std::ops::Sub for Duration90k {
    type Output = Duration90k;
    fn sub(self, o: Duration90k) -> Duration90k {
        Duration90k(self.0 - o.0)
    }
}

impl std::iter::Sum for Duration90k {
    fn sum<I: Iterator<Item = Duration90k>>(iter: I) -> Duration90k {
        Duration90k(iter.map(|d| d.0).sum())
    }
}

impl std::ops::Sub for Time90k {
    type Output = Duration90k;
    fn sub(self, o: Time90k) -> Duration90k {
        Duration90k(self.0 - o.0)
    }
}

impl std::ops::Add<Duration90k> for Time90k {
    type Output = Time90k;
    fn add(self, d: Duration90k) -> Time90k {
        Time90k(self.0 + d.0)
    }
}

impl std::ops::Sub<Duration90k> for Time90k {
    type Output = Time90k;
    fn sub(self, d: Duration90k) -> Time90k {
        Time90k(self.0 - d.0)
    }
}

impl fmt::Display for Duration90k {
    /// To the millisecond, as ISO 8601 (`PT2.96S`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso_millis())
    }
}

impl fmt::Display for Time90k {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso_millis())
    }
}

/// This boot of the machine and how long it has been up (90 kHz ticks of `CLOCK_BOOTTIME`,
/// which no clock setting moves): what dates a recording truly, whatever the wall clock said
/// while it was made (`docs/archive.md`, "Clock steps"). `None` where the kernel does not say.
pub fn boot_clock() -> Option<(&'static str, i64)> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let id = BOOT_ID
        .get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned()))
        .as_deref()?;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer, which points to a
    // live, properly aligned `timespec` on this stack frame; it reads nothing else.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let nanos = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
    Some((id, i64::try_from(nanos * i128::from(TICKS_PER_SEC) / 1_000_000_000).ok()?))
}

/// Converts a std duration to ticks, saturating at i64::MAX.
pub fn duration_to_ticks(d: std::time::Duration) -> i64 {
    let ticks = d.as_nanos() * TICKS_PER_SEC as u128 / 1_000_000_000;
    i64::try_from(ticks).unwrap_or(i64::MAX)
}

/// Parses an ISO 8601 duration (`PT30S`, `PT5M`, `P7D`; days are 24 h) into ticks.
fn parse_iso_duration(s: &str) -> Result<i64, TimeError> {
    let t = s.trim();
    // jiff also reads a "friendly" format ("30 seconds"); AVA speaks ISO 8601 only.
    if !t.starts_with(['P', 'p']) {
        return Err(TimeError::BadDuration(s.to_owned()));
    }
    let span = jiff::Span::from_str(t).map_err(|_| TimeError::BadDuration(s.to_owned()))?;
    let secs = span
        .total((jiff::Unit::Second, jiff::SpanRelativeTo::days_are_24_hours()))
        .map_err(|_| TimeError::BadDuration(s.to_owned()))?;
    if !(0.0..=1e12).contains(&secs) {
        return Err(TimeError::OutOfRange(s.to_owned()));
    }
    Ok((secs * TICKS_PER_SEC as f64).round() as i64)
}

/// Formats ticks as an ISO 8601 duration in whole seconds (`PT30S`), as AVA echoes them.
fn format_iso_duration(ticks: i64) -> String {
    format!("PT{}S", ticks / TICKS_PER_SEC)
}

/// Formats ticks as seconds rounded to milliseconds with three decimals (`1.000`, `2.960`),
/// as HLS's `EXTINF` and `TIME-OFFSET` take them; negative values count as zero.
pub fn format_seconds_ms(ticks: i64) -> String {
    let ms = (ticks.max(0).saturating_mul(1000) + TICKS_PER_SEC / 2) / TICKS_PER_SEC;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Formats ticks as an ISO 8601 duration to the millisecond, without trailing zeros (`PT3S`,
/// `PT2.96S`, `PT1.001S`): a File video's length.
fn format_iso_duration_ms(ticks: i64) -> String {
    let ms = (ticks.saturating_mul(1000) + TICKS_PER_SEC / 2).div_euclid(TICKS_PER_SEC);
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        return format!("PT{s}S");
    }
    let frac = format!("{frac:03}");
    format!("PT{s}.{}S", frac.trim_end_matches('0'))
}

/// Formats a period as AVA writes retention: whole days as `P7D`, anything else in seconds.
fn format_iso_period(ticks: i64) -> String {
    if ticks % DAY_90K == 0 { format!("P{}D", ticks / DAY_90K) } else { format_iso_duration(ticks) }
}

/// Scales `rel` (0..=`from`) to the range 0..=`to`, rounding down; used to map media time to
/// wall time inside a segment whose wall duration was slewed.
pub fn rescale(rel: i64, from: i64, to: i64) -> i64 {
    if from <= 0 {
        return rel;
    }
    // In i64 when the product fits (always, for offsets within a segment): the same quotient,
    // without a 128-bit division per sample when planning a day of frames.
    match rel.checked_mul(to) {
        Some(p) => p / from,
        None => ((i128::from(rel) * i128::from(to)) / i128::from(from)) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_durations() {
        assert_eq!(format_iso_duration_ms(270_000), "PT3S");
        assert_eq!(format_iso_duration_ms(266_400), "PT2.96S");
        assert_eq!(format_iso_duration_ms(90_090), "PT1.001S");
        assert_eq!(format_iso_duration_ms(0), "PT0S");
    }

    #[test]
    fn iso_roundtrip_keeps_millis() {
        let t = Time90k::parse_iso("2026-11-23T05:06:07.123Z").unwrap();
        assert_eq!(t.to_iso_millis(), "2026-11-23T05:06:07.123Z");
        assert_eq!(t.as_millis() % 1000, 123);
    }

    #[test]
    fn dates_mean_midnight_utc() {
        let t = Time90k::parse_iso("2026-11-23").unwrap();
        assert_eq!(t.to_iso_millis(), "2026-11-23T00:00:00.000Z");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Time90k::parse_iso("yesterday").is_err());
        assert!(parse_iso_duration("30 seconds").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_iso_duration("PT30S").unwrap(), 30 * TICKS_PER_SEC);
        assert_eq!(parse_iso_duration("P7D").unwrap(), 7 * 86_400 * TICKS_PER_SEC);
        assert_eq!(format_iso_duration(300 * TICKS_PER_SEC), "PT300S");
    }

    #[test]
    fn durations_are_typed_apart_from_instants() {
        let t = Time90k::parse_iso("2026-11-23T05:00:00Z").unwrap();
        let d = Duration90k::parse_iso("PT30S").unwrap();
        assert_eq!(d, Duration90k::from_secs(30));
        assert_eq!((t + d) - t, d);
        assert_eq!((t + d - d), t);
        assert_eq!(Duration90k::from_days(7).to_iso_period(), "P7D");
        assert_eq!(Duration90k::from_secs(90).to_iso_period(), "PT90S");
        assert_eq!(Duration90k(266_400).to_string(), "PT2.96S");
        assert_eq!(Duration90k::from_secs(2).to_std(), std::time::Duration::from_secs(2));
        assert_eq!([d, d].into_iter().sum::<Duration90k>(), Duration90k::from_secs(60));
        assert_eq!(Duration90k::parse_iso_signed("-PT5S").unwrap(), Duration90k::from_secs(-5));
        assert_eq!(Duration90k::parse_iso_signed("PT1M").unwrap(), Duration90k::from_secs(60));
        assert_eq!(Duration90k::from_secs(-60).to_iso_millis(), "-PT60S");
        assert!(Duration90k::parse_iso_signed("--PT5S").is_err());
    }

    #[test]
    fn rescale_is_exact_at_ends() {
        assert_eq!(rescale(0, 1000, 1001), 0);
        assert_eq!(rescale(1000, 1000, 1001), 1001);
    }
}
