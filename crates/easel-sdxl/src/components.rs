//! Why this exists: a model's files ([`ModelSource`]) say nothing about how its
//! components are built. Most sources keep each component's weights and tokenizer as
//! files; a single-file checkpoint maps its weights from its own keys and may use the
//! embedded CLIP vocabulary. [`Components`] is that second step, layered above the source,
//! the weight finder and the tokenizer, so the source layer never depends on what is
//! built from it.

use candle_core::DType;

use crate::loader::{DirSource, EmbeddedSource, ModelSource};
use crate::tokenizer::ClipTokenizer;
use crate::weights::{self, ComponentWeights, Variant};
use crate::Result;

/// Where a model's configs, weights and tokenizers come from.
pub(crate) trait Components: Sync {
    /// The files: configs, tokenizer files and (by default) weights.
    fn files(&self) -> &dyn ModelSource;

    /// The weights of component `sub` (`unet`, `vae`, `text_encoder`, ...), whose files are
    /// named `stem`; by default found among the files.
    fn weights(&self, sub: &str, stem: &str, variant: &Variant, dtype: DType) -> Result<ComponentWeights> {
        weights::find(self.files(), sub, stem, variant, dtype)
    }

    /// The tokenizer in folder `sub`; by default read from its files.
    fn tokenizer(&self, sub: &str) -> Result<ClipTokenizer> {
        ClipTokenizer::from_source(self.files(), sub)
    }
}

impl Components for DirSource {
    fn files(&self) -> &dyn ModelSource {
        self
    }
}

impl Components for EmbeddedSource {
    fn files(&self) -> &dyn ModelSource {
        self
    }
}
