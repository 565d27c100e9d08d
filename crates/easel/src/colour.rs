//! Why this exists: one answer to "may this output be coloured?", shared by the logs, clap's
//! help and errors, and the progress bar, so `NO_COLOR` (https://no-color.org: set and
//! non-empty means no ANSI colour) switches all of them off at once.

use std::io::IsTerminal;

/// Whether the user asked for no colour: `NO_COLOR` is set and not empty.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether stderr may get ANSI colour: a terminal, and no `NO_COLOR`.
pub fn on_stderr() -> bool {
    !no_color() && std::io::stderr().is_terminal()
}

/// clap's colour setting: never with `NO_COLOR`, else clap decides per stream.
pub fn clap_choice() -> clap::ColorChoice {
    if no_color() {
        clap::ColorChoice::Never
    } else {
        clap::ColorChoice::Auto
    }
}

/// A progress bar on stderr when it is a terminal (`None` otherwise), drawn with `coloured`
/// unless `NO_COLOR` asks for `plain` (indicatif templates).
pub fn bar(len: u64, coloured: &str, plain: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    let template = if on_stderr() { coloured } else { plain };
    if let Ok(s) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(s.progress_chars("=> "));
    }
    Some(bar)
}
