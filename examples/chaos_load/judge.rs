//! The rules: which failures a fault explains (allowed) and which it does not, read from
//! the fault log `scripts/chaos.sh` writes. RELIABILITY.md states the same rules in prose.

use std::collections::{BTreeMap, BTreeSet};

use crate::load::{Kind, Outcome, Record};

/// How far (ms) a fault may lie outside a request's own interval and still be blamed:
/// the two clocks are the same, but the fault log is written just after the signal.
const SLACK_MS: u64 = 100;
/// A reload kills busy workers up to `process_control_timeout` (1 s in chaos.sh) after
/// the signal: its deaths span that long.
const RELOAD_MS: u64 = 1000;

/// The faults, per backend: when it died (kill -9, reload) and when it was not serving.
#[derive(Default)]
pub struct Faults {
    deaths: Vec<(u64, u64, String)>,
    down: Vec<(String, u64, u64)>,
    pub counts: BTreeMap<String, usize>,
}

impl Faults {
    /// Parses `EPOCH_MS KIND BACKEND` lines.
    pub fn parse(text: &str) -> Faults {
        let mut faults = Faults::default();
        // When each backend went down (killed or stopped) and has not come back yet.
        let mut since: BTreeMap<String, u64> = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(ms), Some(kind), Some(backend)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Ok(ms) = ms.parse::<u64>() else { continue };
            *faults.counts.entry(kind.to_owned()).or_default() += 1;
            match kind {
                "kill" => faults.deaths.push((ms, ms, backend.to_owned())),
                "reload" => faults.deaths.push((ms, ms + RELOAD_MS, backend.to_owned())),
                _ => {}
            }
            match kind {
                "kill" | "stop" => {
                    since.entry(backend.to_owned()).or_insert(ms);
                }
                "start" | "cont" => {
                    if let Some(from) = since.remove(backend) {
                        faults.down.push((backend.to_owned(), from, ms));
                    }
                }
                _ => {}
            }
        }
        faults
            .down
            .extend(since.into_iter().map(|(b, from)| (b, from, u64::MAX)));
        faults
    }

    /// Distinct backends that died while `[start, end]` ran.
    fn deaths_during(&self, start: u64, end: u64) -> usize {
        let from = start.saturating_sub(SLACK_MS);
        let to = end.saturating_add(SLACK_MS);
        let hit: BTreeSet<&str> = self
            .deaths
            .iter()
            .filter(|(first, last, _)| *first <= to && from <= *last)
            .map(|(_, _, b)| b.as_str())
            .collect();
        hit.len()
    }

    /// Distinct backends that were out during `[start, end]`: died in it, or were down
    /// (killed and not yet restarted, or stopped) at some moment of it.
    fn out_during(&self, start: u64, end: u64) -> usize {
        let from = start.saturating_sub(SLACK_MS);
        let to = end.saturating_add(SLACK_MS);
        let died = self
            .deaths
            .iter()
            .filter(|(first, last, _)| *first <= to && from <= *last)
            .map(|(_, _, b)| b.as_str());
        let down = self
            .down
            .iter()
            .filter(|(_, f, t)| *f <= to && from <= *t)
            .map(|(b, _, _)| b.as_str());
        let out: BTreeSet<&str> = died.chain(down).collect();
        out.len()
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Vanished,
    Mismatch,
    FalseComplete,
    /// A request with a body, running on a backend that died: not replayed (not idempotent).
    PostOnKilled,
    /// A 200 head, then a backend died: the response was under way and cannot be replayed;
    /// the cut is visible to the client, which is what must hold.
    CutMidResponse,
    /// No head, and the one retry elsewhere could not be sure to find a live backend:
    /// two or more backends died or were down during the request.
    NoBackendLeft,
    /// Anything else: a failure no fault explains.
    Disallowed,
}

pub fn judge(record: &Record, faults: &Faults) -> Verdict {
    let (start, end) = (record.start_ms, record.end_ms);
    let has_body = matches!(
        record.kind,
        Kind::PostSmall | Kind::PostBig | Kind::SlowUpload | Kind::VanishUpload
    );
    let deaths = faults.deaths_during(start, end);
    match &record.outcome {
        Outcome::Ok => Verdict::Ok,
        Outcome::Vanished => Verdict::Vanished,
        Outcome::Mismatch => Verdict::Mismatch,
        Outcome::FalseComplete => Verdict::FalseComplete,
        Outcome::FailedHead(_) | Outcome::FailedBody(_) if has_body && deaths > 0 => {
            Verdict::PostOnKilled
        }
        Outcome::FailedBody(_) if deaths > 0 => Verdict::CutMidResponse,
        Outcome::FailedHead(_) if faults.out_during(start, end) >= 2 => Verdict::NoBackendLeft,
        Outcome::FailedHead(_) | Outcome::FailedBody(_) => Verdict::Disallowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind, outcome: Outcome, start_ms: u64, end_ms: u64) -> Record {
        Record {
            kind,
            start_ms,
            end_ms,
            outcome,
        }
    }

    #[test]
    fn faults_explain_only_what_the_rules_allow() {
        let log = "1000 kill b0\n1500 start b0\n3000 stop b1\n3000 stop b2\n3100 kill b0\n\
                   3400 start b0\n3500 cont b1\n3600 cont b2\n5000 stop b1\n5500 cont b1\n";
        let f = Faults::parse(log);
        let failed = || Outcome::FailedHead("status 502".into());
        let cut = || Outcome::FailedBody("reset".into());
        assert_eq!(
            judge(&record(Kind::PostBig, failed(), 900, 1200), &f),
            Verdict::PostOnKilled
        );
        assert_eq!(
            judge(&record(Kind::Download, cut(), 900, 1200), &f),
            Verdict::CutMidResponse
        );
        // One death, no head: the fleet should have retried the GET elsewhere.
        assert_eq!(
            judge(&record(Kind::Get, failed(), 900, 1200), &f),
            Verdict::Disallowed
        );
        // Two stopped, then one killed: the retry may land on a stopped one.
        assert_eq!(
            judge(&record(Kind::Get, failed(), 3050, 3200), &f),
            Verdict::NoBackendLeft
        );
        // A stop alone explains nothing: every timeout is far longer than a stop.
        assert_eq!(
            judge(&record(Kind::Get, failed(), 5100, 5200), &f),
            Verdict::Disallowed
        );
        assert_eq!(
            judge(&record(Kind::PostSmall, cut(), 2000, 2500), &f),
            Verdict::Disallowed
        );
        assert_eq!(f.counts.get("stop"), Some(&3));
    }
}
