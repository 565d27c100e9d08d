//! Why this exists: `easel submit --wait` and `easel jobs show --follow` show a running job's
//! progress the same way: a bar on a terminal (coloured unless `NO_COLOR`), and elsewhere one
//! plain line per change of phase or step, at most one a second, so logs stay readable.

use std::time::{Duration, Instant};

use easel_jobs::queue::control::Progress;

/// The least time between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// Shows progress reports as they come.
pub struct JobBar {
    bar: Option<indicatif::ProgressBar>,
    last: Option<(String, u32, u32)>,
    last_line: Option<Instant>,
}

impl JobBar {
    /// A bar on a terminal stderr, plain lines otherwise.
    pub fn new() -> Self {
        let bar = crate::colour::bar(
            0,
            "{spinner:.green} {msg} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise}",
            "{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed_precise}",
        );
        Self {
            bar,
            last: None,
            last_line: None,
        }
    }

    /// Shows `p` if it differs from the last report.
    pub fn show(&mut self, p: &Progress) {
        let key = (p.phase.clone(), p.step, p.total);
        if self.last.as_ref() == Some(&key) {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_message(p.phase.clone());
            bar.set_length(u64::from(p.total));
            bar.set_position(u64::from(p.step));
        } else if self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY)
            || self.last.as_ref().map(|l| &l.0) != Some(&p.phase)
        {
            eprintln!("progress: {} {}/{}", p.phase, p.step, p.total);
            self.last_line = Some(Instant::now());
        }
        self.last = Some(key);
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
