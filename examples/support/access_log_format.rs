//! The access log's field formatting: the `[02/Dec/2026:03:36:50 +0000]` timestamp and the
//! escaping of client-sent text.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The length of `02/Dec/2026:03:36:50 +0000`.
const STAMP_LEN: usize = 26;

thread_local! {
    /// The last second formatted on this thread and its text: requests arriving in the
    /// same second (nearly all of them, under load) copy it instead of redoing the
    /// calendar arithmetic.
    static LAST: Cell<(u64, [u8; STAMP_LEN])> = const { Cell::new((u64::MAX, [0; STAMP_LEN])) };
}

/// Appends `time` as `DD/Mon/YYYY:HH:MM:SS +0000` (UTC; a clock before 1970 prints the
/// epoch).
pub fn push_time(line: &mut String, time: SystemTime) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (cached, mut text) = LAST.get();
    if cached != secs {
        text = stamp(secs);
        LAST.set((secs, text));
    }
    // `stamp` writes ASCII only.
    line.push_str(std::str::from_utf8(&text).unwrap_or("-"));
}

fn stamp(secs: u64) -> [u8; STAMP_LEN] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    let text = format!(
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS
            .get(month.saturating_sub(1) as usize)
            .unwrap_or(&"???"),
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
    let mut out = [b' '; STAMP_LEN];
    for (to, from) in out.iter_mut().zip(text.bytes()) {
        *to = from;
    }
    out
}

/// Days since 1970-01-01 to (year, month 1–12, day 1–31) in the proleptic Gregorian
/// calendar, by eras of 400 years (146 097 days) so leap years need no table.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so that a leap day is the last day of its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends client-sent bytes as nginx's `escape=default` does: printable ASCII as is,
/// `"`, `\`, controls and every byte ≥ 0x7f as `\xHH`, so a line is one line and its
/// quoted fields cannot be forged.
pub fn push_escaped(line: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            line.push(char::from(b));
        } else {
            line.push_str("\\x");
            line.push(char::from(HEX[usize::from(b >> 4)]));
            line.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        let mut line = String::new();
        push_time(&mut line, UNIX_EPOCH + Duration::from_secs(secs));
        line
    }

    #[test]
    fn timestamps() {
        assert_eq!(at(0), "01/Jan/1970:00:00:00 +0000");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.
        assert_eq!(at(951_827_696), "29/Feb/2000:12:34:56 +0000");
        // 2026-12-02 03:36:50, then the same second again (the cached text).
        assert_eq!(at(1_796_182_610), "02/Dec/2026:03:36:50 +0000");
        assert_eq!(at(1_796_182_610), "02/Dec/2026:03:36:50 +0000");
        // 2100-03-01: 2100 is not a leap year.
        assert_eq!(at(4_107_542_400), "01/Mar/2100:00:00:00 +0000");
    }

    #[test]
    fn escaping() {
        let mut line = String::new();
        push_escaped(&mut line, b"/a b?q=\"x\"\\\n\x7f\xc3\xa9");
        assert_eq!(line, "/a b?q=\\x22x\\x22\\x5C\\x0A\\x7F\\xC3\\xA9");
    }
}
