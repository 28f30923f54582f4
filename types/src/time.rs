//! Block, vote and proposal times: seconds and nanoseconds since the Unix epoch, and their
//! RFC 3339 form (what genesis files and the RPC show).

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Seconds and nanoseconds since the Unix epoch. The libraries never read a clock: a node
/// stamps its votes and proposals with its own, and a block's time is the weighted median
/// of the previous block's precommit timestamps (CometBFT's BFT time).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

impl Timestamp {
    /// Go's zero `time.Time` (0001-01-01T00:00:00Z): what CometBFT writes for an absent
    /// commit signature.
    pub const GO_ZERO: Timestamp = Timestamp {
        seconds: -62_135_596_800,
        nanos: 0,
    };

    /// As a protobuf `Timestamp`.
    pub fn canonical(self) -> crate::canonical::Time {
        crate::canonical::Time {
            seconds: self.seconds,
            nanos: self.nanos as i32,
        }
    }

    /// Nanoseconds since the Unix epoch (for medians and differences).
    pub fn as_nanos(self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// The inverse of [`Self::as_nanos`].
    pub fn from_nanos(n: i128) -> Timestamp {
        Timestamp {
            seconds: n.div_euclid(1_000_000_000) as i64,
            nanos: n.rem_euclid(1_000_000_000) as u32,
        }
    }

    /// This time plus `ms` milliseconds.
    pub fn plus_millis(self, ms: u64) -> Timestamp {
        Self::from_nanos(self.as_nanos() + i128::from(ms) * 1_000_000)
    }
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-25T04:32:31.123456789Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let secs = t.seconds;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        t.nanos
    )
}

/// The inverse of [`rfc3339`]: `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC only).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    // Days from civil (Howard Hinnant), the inverse of the calendar code above.
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let nanos: u32 = format!("{frac:0<9}").parse().ok()?;
    Some(Timestamp {
        seconds: days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2],
        nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_back() {
        for t in [
            Timestamp {
                seconds: 0,
                nanos: 0,
            },
            Timestamp {
                seconds: 1_795_581_151,
                nanos: 250_000_000,
            },
            Timestamp {
                seconds: 951_782_400,
                nanos: 7,
            },
        ] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00Z").map(|t| t.nanos),
            Some(0)
        );
        assert_eq!(parse_rfc3339("2026-01-01 00:00:00"), None);
    }

    #[test]
    fn times_are_rfc3339_with_nanoseconds() {
        assert_eq!(
            rfc3339(Timestamp {
                seconds: 0,
                nanos: 5
            }),
            "1970-01-01T00:00:00.000000005Z"
        );
        // 2026-11-25T04:32:31Z
        assert_eq!(
            rfc3339(Timestamp {
                seconds: 1_795_581_151,
                nanos: 123_456_789
            }),
            "2026-11-25T04:32:31.123456789Z"
        );
        // A leap day.
        assert_eq!(
            rfc3339(Timestamp {
                seconds: 1_709_164_800,
                nanos: 0
            }),
            "2024-02-29T00:00:00.000000000Z"
        );
    }
}
