//! AVA's `availableMedia`: the recorded ranges of a video at a precision, gaps splitting them.

use super::{Archive, ArchiveError, GAP_TOLERANCE_90K, db};
use crate::time::{DAY_90K, TICKS_PER_SEC, Time90k};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

/// AVA's precisions for `availableMedia`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Precision {
    /// `YYYY`; any span.
    Year,
    /// `YYYY-MM`; span ≤ 12 months.
    Month,
    /// `YYYY-MM-DD`; span ≤ 31 days.
    Day,
    /// `YYYY-MM-DDThh:mm:ss.sssZ`; span ≤ 25 hours.
    Full,
}

/// Where a range's media is kept (openva's `location`, asked for with `location=true`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// On local disk only (not uploaded yet, or no remote tier).
    Local,
    /// On local disk and in the remote tier.
    Both,
    /// In the remote tier only (the local copy evicted, or the index built from a bucket).
    Remote,
}

/// One range in AVA's shape (inclusive, UTC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    /// Start, formatted per precision.
    pub start: String,
    /// End, formatted per precision.
    pub end: String,
    /// Where its media is, when asked (ranges are then split where that changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// AVA's response body: `{"timeRanges":[…]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableMedia {
    /// The ranges, oldest first.
    pub time_ranges: Vec<TimeRange>,
}

impl std::str::FromStr for Precision {
    type Err = ArchiveError;

    /// Case-insensitive, as AVA matched enum values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "year" => Ok(Precision::Year),
            "month" => Ok(Precision::Month),
            "day" => Ok(Precision::Day),
            "full" => Ok(Precision::Full),
            _ => Err(ArchiveError::BadRange(format!("precision '{s}' is not one of year, month, day, full"))),
        }
    }
}

impl Archive {
    /// Recorded wall-clock ranges of `video` within `[start, end]`, merged across segments and
    /// split at gaps (exact ticks, before any formatting).
    pub fn recorded_ranges(
        &self,
        video: &str,
        start: Option<Time90k>,
        end: Option<Time90k>,
    ) -> Result<Vec<(Time90k, Time90k)>, ArchiveError> {
        Ok(self.located_ranges(video, start, end, false)?.into_iter().map(|(a, b, _)| (a, b)).collect())
    }

    /// [`Self::recorded_ranges`], also split where the media's [`Location`] changes when
    /// `located`.
    fn located_ranges(
        &self,
        video: &str,
        start: Option<Time90k>,
        end: Option<Time90k>,
        located: bool,
    ) -> Result<Vec<(Time90k, Time90k, Option<Location>)>, ArchiveError> {
        let v = self.video(video)?;
        if v.kind == super::VideoKind::File {
            return Err(ArchiveError::FileVideo {
                video: v.name,
                reason: "it has no recorded time ranges (availableMedia applies to archive videos only)",
            });
        }
        // Positions only, never the sample indexes (docs/api.md, "availableMedia"); the
        // connection is held for the one query.
        let (mut spans, places) = {
            let conn = self.reader()?;
            let spans = db::segment_spans(&conn, v.id, start, end)?;
            let places = if located { db::segment_locations(&conn, v.id, start, end)? } else { Default::default() };
            (spans, places)
        };
        self.live.overlay_spans(&mut spans);
        let mut out: Vec<(Time90k, Time90k, Option<Location>)> = Vec::new();
        for (id, a, dur) in spans {
            let b = Time90k(a.0 + dur);
            if b <= a {
                continue;
            }
            // A segment the query did not see (recorded since) is local.
            let place = located.then(|| places.get(&id).copied().unwrap_or(Location::Local));
            match out.last_mut() {
                // Touching or overlapping: one range. Within a run segments touch exactly.
                Some(last) if a.0 <= last.1.0 + GAP_TOLERANCE_90K && last.2 == place => last.1 = last.1.max(b),
                // Touching, kept elsewhere: a new range from where the last one ends.
                Some(last) if a.0 <= last.1.0 + GAP_TOLERANCE_90K => {
                    let from = a.max(last.1);
                    out.push((from, b, place));
                }
                _ => out.push((a, b, place)),
            }
        }
        Ok(out
            .into_iter()
            .filter_map(|(a, b, place)| {
                let a = start.map_or(a, |s| a.max(s));
                let b = end.map_or(b, |e| b.min(e));
                (a < b).then_some((a, b, place))
            })
            .collect())
    }

    /// AVA's `availableMedia` for `video`, with AVA's span limits per precision; with
    /// `located` (precision full only), each range says where its media is kept.
    pub fn available_media(
        &self,
        video: &str,
        precision: Precision,
        start: Option<Time90k>,
        end: Option<Time90k>,
        located: bool,
    ) -> Result<AvailableMedia, ArchiveError> {
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(ArchiveError::EndBeforeStart { start: s, end: e });
        }
        if located && precision != Precision::Full {
            return Err(ArchiveError::BadRange("location is given with precision full only".into()));
        }
        let located_ranges = self.located_ranges(video, start, end, located)?;
        let ranges: Vec<(Time90k, Time90k)> = located_ranges.iter().map(|&(a, b, _)| (a, b)).collect();
        // The span asked for (or, for an open bound, the span of the data) must fit AVA's limit.
        let lo = start.or(ranges.first().map(|r| r.0));
        let hi = end.or(ranges.last().map(|r| r.1));
        let limit = match precision {
            Precision::Year => None,
            Precision::Month => Some((366 * DAY_90K, "12 months", "precision month")),
            Precision::Day => Some((31 * DAY_90K, "31 days", "precision day")),
            Precision::Full => Some((25 * 3600 * TICKS_PER_SEC, "25 hours", "precision full")),
        };
        if let (Some(lo), Some(hi), Some((max, limit, of))) = (lo, hi, limit)
            && hi.0 - lo.0 > max
        {
            return Err(ArchiveError::SpanTooLong { start: lo, end: hi, limit, of });
        }
        let time_ranges = match precision {
            Precision::Full => located_ranges
                .iter()
                .map(|&(a, b, location)| TimeRange { start: a.to_iso_millis(), end: b.to_iso_millis(), location })
                .collect(),
            _ => calendar_ranges(&ranges, precision),
        };
        Ok(AvailableMedia { time_ranges })
    }
}

/// The calendar units (years, months or days, UTC) that hold media, merged when consecutive.
fn calendar_ranges(ranges: &[(Time90k, Time90k)], p: Precision) -> Vec<TimeRange> {
    let unit = |t: Time90k| -> Date {
        let d = t.to_jiff().to_zoned(TimeZone::UTC).date();
        match p {
            Precision::Year => Date::new(d.year(), 1, 1).unwrap_or(d),
            Precision::Month => d.first_of_month(),
            _ => d,
        }
    };
    let next = |d: Date| -> Option<Date> {
        match p {
            Precision::Year => d.checked_add(jiff::Span::new().years(1)).ok(),
            Precision::Month => d.checked_add(jiff::Span::new().months(1)).ok(),
            _ => d.tomorrow().ok(),
        }
    };
    let fmt = |d: Date| -> String {
        match p {
            Precision::Year => format!("{:04}", d.year()),
            Precision::Month => format!("{:04}-{:02}", d.year(), d.month()),
            _ => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        }
    };
    let mut out: Vec<(Date, Date)> = Vec::new();
    for &(a, b) in ranges {
        // The end is exclusive: media ending exactly at midnight does not touch the next day.
        let (ua, ub) = (unit(a), unit(Time90k(b.0 - 1)));
        match out.last_mut() {
            Some(last) if next(last.1).is_some_and(|n| ua <= n) => last.1 = last.1.max(ub),
            _ => out.push((ua, ub)),
        }
    }
    out.into_iter().map(|(a, b)| TimeRange { start: fmt(a), end: fmt(b), location: None }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time90k {
        Time90k::parse_iso(s).unwrap()
    }

    #[test]
    fn days_merge_when_consecutive_and_split_on_missing_days() {
        let r = [
            (t("2026-11-20T10:00:00Z"), t("2026-11-21T01:00:00Z")),
            (t("2026-11-21T05:00:00Z"), t("2026-11-22T00:00:00Z")),
            (t("2026-11-24T05:00:00Z"), t("2026-11-24T06:00:00Z")),
        ];
        let d = calendar_ranges(&r, Precision::Day);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].start.as_str(), d[0].end.as_str()), ("2026-11-20", "2026-11-21"));
        assert_eq!((d[1].start.as_str(), d[1].end.as_str()), ("2026-11-24", "2026-11-24"));
        let m = calendar_ranges(&r, Precision::Month);
        assert_eq!((m.len(), m[0].start.as_str()), (1, "2026-11"));
        let y = calendar_ranges(&r, Precision::Year);
        assert_eq!(y[0].end, "2026");
    }
}
