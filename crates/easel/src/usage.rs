//! Why this exists: usage errors found after clap parsed the arguments (a value out of range,
//! a worker kind that does not exist, an `--out` that cannot be written) must look and exit
//! like clap's own: `error: ...`, the command's usage line, exit 2. Commands return
//! [`UsageError`] inside their `anyhow::Error`; `main` renders it through clap.

use std::fmt;

/// A mistake in the command line, not in the environment or the run.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The usage error inside `e`, if it is one.
pub fn find(e: &anyhow::Error) -> Option<&UsageError> {
    e.chain().find_map(|c| c.downcast_ref::<UsageError>())
}
