//! Why this exists: each scenario ends in one row of the same figures — jobs, faults, lost,
//! duplicate terminal callbacks, entries left in processing lists, dead letters, crashes,
//! objects outside `<bucket>/<user_id>/<job_id>/`, time — printed as one table, and the
//! properties every row must have are checked in one place.

use std::time::Duration;

/// One scenario's figures.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub name: String,
    pub jobs: usize,
    pub faults: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub left: u64,
    pub dead: u64,
    pub crashes: Vec<String>,
    pub outside: Vec<String>,
    pub secs: f64,
    /// Jobs whose first image was uploaded more than once (run again after a fault).
    pub reruns: usize,
    /// Anything else worth reading (e.g. time to ready).
    pub note: String,
}

impl Row {
    /// Panics with the row if it breaks a guarantee.
    pub fn assert_clean(&self) {
        assert!(
            self.lost == 0
                && self.duplicates == 0
                && self.left == 0
                && self.crashes.is_empty()
                && self.outside.is_empty(),
            "{}: lost {}, duplicates {}, left {}, crashes {:?}, objects outside their job's folder {:?}",
            self.name,
            self.lost,
            self.duplicates,
            self.left,
            self.crashes,
            self.outside
        );
    }
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | jobs | faults | lost | duplicate terminal callbacks | left in processing | dead letters | crashes | objects outside job folder | time | notes |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s | {} |\n",
            r.name,
            r.jobs,
            r.faults,
            r.lost,
            r.duplicates,
            r.left,
            r.dead,
            r.crashes.len(),
            r.outside.len(),
            r.secs,
            r.note
        ));
    }
    s
}

/// Seconds as a short figure.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
