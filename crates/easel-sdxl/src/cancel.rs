//! Why this exists: a worker must be able to stop a generation it no longer wants (a job
//! cancelled by its owner, a timeout, a shutdown) and get the device back within one step, with
//! the loaded model untouched for the next job. A [`Cancel`] is a shared flag the caller sets
//! from any thread; the pipeline checks it before every UNet step, before the VAE decode and
//! between the images of a batch, and returns [`crate::Error::Cancelled`], dropping what it
//! allocated for the request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation flag shared between a generation and whoever may stop it.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the generation to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
