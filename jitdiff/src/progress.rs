//! Progress of a long command (fuzzing, minimising, triage): on a terminal, a status line
//! or bar that `indicatif` redraws in place; on a pipe or a file, one plain status line
//! every [`PLAIN_EVERY`]; nothing when quiet. The commands' final summaries are printed
//! apart, unchanged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a status line is written where it cannot be redrawn in place.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Standard error is a terminal: redraw in place.
    Terminal,
    /// A pipe or a file: plain lines, now and then.
    Plain,
    /// No progress at all (`--quiet`, or `--json`).
    Quiet,
}

impl Sink {
    /// The sink for a command whose standard error is a terminal or not, unless `quiet`.
    pub fn new(terminal: bool, quiet: bool) -> Sink {
        match (quiet, terminal) {
            (true, _) => Sink::Quiet,
            (false, true) => Sink::Terminal,
            (false, false) => Sink::Plain,
        }
    }
}

/// One command's progress display. Safe to share between threads.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    /// When the last plain line was due (`None`: none yet).
    last: Mutex<Option<Instant>>,
}

impl Progress {
    /// A display on `sink`: a bar of `total` steps (its position shown as `{pos}/{len}
    /// UNIT`), or with `total` `None` a status line.
    pub fn new(sink: Sink, total: Option<u64>, unit: &str) -> Progress {
        let bar = (sink == Sink::Terminal).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = match total {
                Some(_) => format!("[{{bar:30}}] {{pos}}/{{len}} {unit}"),
                None => "{msg}".to_string(),
            };
            let style =
                ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("#>."));
            bar
        });
        Progress { bar, plain: sink == Sink::Plain, last: Mutex::new(None) }
    }

    /// The status is now `line` (and, for a bar, `done` steps): redrawn on a terminal;
    /// returned as a line to write when one is due on a pipe or a file (the first at once,
    /// then every [`PLAIN_EVERY`], and whenever `force`); `None` otherwise.
    pub fn update(&self, done: Option<u64>, line: impl FnOnce() -> String, force: bool) -> Option<String> {
        if let Some(bar) = &self.bar {
            match done {
                Some(d) => bar.set_position(d),
                None => bar.set_message(line()),
            }
            return None;
        }
        if !self.plain {
            return None;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if force || last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            *last = Some(Instant::now());
            return Some(line());
        }
        None
    }

    /// Removes what was drawn on a terminal, so the summary starts on a clean line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_at_once_then_every_few_seconds() {
        let p = Progress::new(Sink::Plain, None, "runs");
        assert_eq!(p.update(None, || "first".into(), false), Some("first".into()));
        assert_eq!(p.update(None, || "second".into(), false), None, "within PLAIN_EVERY");
        assert_eq!(p.update(None, || "last".into(), true), Some("last".into()));
        *p.last.lock().unwrap() = Some(Instant::now() - PLAIN_EVERY);
        assert_eq!(p.update(None, || "later".into(), false), Some("later".into()));
    }

    #[test]
    fn quiet_and_terminal_write_no_lines() {
        let quiet = Progress::new(Sink::Quiet, Some(10), "inputs");
        assert_eq!(quiet.update(Some(1), || "x".into(), true), None);
        assert_eq!(Sink::new(true, true), Sink::Quiet);
        assert_eq!(Sink::new(false, false), Sink::Plain);
        assert_eq!(Sink::new(true, false), Sink::Terminal);
    }
}
