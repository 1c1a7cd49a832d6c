//! A recorder for tests that keeps every counter and gauge it hands out, by name and
//! labels, and every description.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Counter(u64),
    Gauge(f64),
}

pub type Labels = BTreeMap<String, String>;
/// A series as the recorder saw it: name and sorted labels.
type SeriesKey = (String, Vec<(String, String)>);
type Cells = Mutex<BTreeMap<SeriesKey, Arc<AtomicU64>>>;

/// Keeps every counter and gauge it hands out, by name and labels.
#[derive(Default)]
pub struct Capture {
    counters: Cells,
    /// f64 bits, as `metrics`' `GaugeFn for AtomicU64` keeps them.
    gauges: Cells,
    pub described: Mutex<BTreeMap<String, (Option<Unit>, String)>>,
}

fn parts(key: &Key) -> SeriesKey {
    let mut labels: Vec<_> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

impl Recorder for Capture {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        let name = key.as_str().to_owned();
        self.described
            .lock()
            .unwrap()
            .insert(name, (unit, help.to_string()));
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe_counter(key, unit, help);
    }
    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        panic!("no histograms expected: {}", key.as_str());
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let cell = self
            .counters
            .lock()
            .unwrap()
            .entry(parts(key))
            .or_default()
            .clone();
        Counter::from_arc(cell)
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let cell = self
            .gauges
            .lock()
            .unwrap()
            .entry(parts(key))
            .or_default()
            .clone();
        Gauge::from_arc(cell)
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        panic!("no histograms expected: {}", key.name());
    }
}

impl Capture {
    /// Every series: name → labels → value.
    pub fn series(&self) -> BTreeMap<String, BTreeMap<Labels, Value>> {
        let mut out: BTreeMap<String, BTreeMap<Labels, Value>> = BTreeMap::new();
        for ((name, labels), cell) in self.counters.lock().unwrap().iter() {
            let value = Value::Counter(cell.load(Ordering::SeqCst));
            let old = out
                .entry(name.clone())
                .or_default()
                .insert(labels.iter().cloned().collect(), value);
            assert!(old.is_none());
        }
        let counters: BTreeSet<String> = out.keys().cloned().collect();
        for ((name, labels), cell) in self.gauges.lock().unwrap().iter() {
            assert!(
                !counters.contains(name),
                "{name} is both a counter and a gauge"
            );
            let value = Value::Gauge(f64::from_bits(cell.load(Ordering::SeqCst)));
            out.entry(name.clone())
                .or_default()
                .insert(labels.iter().cloned().collect(), value);
        }
        out
    }

    /// The value of one series, which must exist.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Value {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let series = self.series();
        let Some(value) = series.get(name).and_then(|by| by.get(&labels)) else {
            panic!("no {name}{labels:?}; have {:#?}", series.get(name));
        };
        *value
    }

    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Value::Counter(n) => n,
            other => panic!("{name} is {other:?}, not a counter"),
        }
    }

    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.get(name, labels) {
            Value::Gauge(v) => v,
            other => panic!("{name} is {other:?}, not a gauge"),
        }
    }
}
