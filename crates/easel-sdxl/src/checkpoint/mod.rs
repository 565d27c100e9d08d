//! Why this exists: single-file SDXL checkpoints — the civitai-style `.safetensors` files
//! that hold the UNet, the VAE and both text encoders in the original (LDM/SGM) key layout,
//! in f32, f16 or bf16.
//!
//! Flow of `SingleFile::open`: read the header only (`header.rs`) → say what the file is
//! when it is not an SDXL checkpoint (`kind.rs`) → read the configs (Easel's shipped
//! SDXL-base ones, `configs.rs`, or a diffusers folder's) → compare the architecture they
//! describe with the file's shapes (`signature.rs`) → open the file for tensor-by-tensor
//! reads. The result is a model source whose components' weights are read through a
//! renaming backend (`backend.rs`, `keymap.rs`), so loading builds it like any folder.
//!
//! Public: the key mapping between diffusers and single-file names ([`KeyMap`],
//! [`folder_key_maps`]), for tools that write or check single files.

mod backend;
pub(crate) mod configs;
pub(crate) mod keymap;
pub(crate) mod kind;
pub(crate) mod signature;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::DType;

pub use keymap::{KeyMap, Source, CLIP_G_PREFIX, CLIP_L_PREFIX, UNET_PREFIX, VAE_PREFIX};
pub(crate) use kind::FileKind;
pub(crate) use signature::{Architecture, Configs};

use self::backend::LdmBackend;
use crate::components::Components;
use crate::config::{ClipConfig, UNetConfig, VaeConfig};
use crate::header::Header;
use crate::loader::{read_json, DirSource, ModelSource};
use crate::reader::FileTensors;
use crate::tokenizer::ClipTokenizer;
use crate::weights::{ComponentWeights, Variant};
use crate::{Error, Result};

/// Where a single file's configs come from.
enum ConfigSource {
    /// Easel's SDXL-base configs and the embedded CLIP vocabulary.
    Shipped,
    /// A diffusers folder's configs (and its tokenizers when it has them).
    Dir(DirSource),
}

impl ConfigSource {
    fn src(&self) -> &dyn ModelSource {
        match self {
            ConfigSource::Shipped => &configs::SDXL_BASE,
            ConfigSource::Dir(d) => d,
        }
    }
}

/// An opened single-file SDXL checkpoint, as a [`ModelSource`].
pub(crate) struct SingleFile {
    path: PathBuf,
    configs: ConfigSource,
    file: Arc<FileTensors>,
    /// Key maps of unet, vae, text_encoder, text_encoder_2.
    maps: [Arc<KeyMap>; 4],
}

impl SingleFile {
    /// Opens `path`, with the configs of the diffusers folder `config_dir` when given.
    pub fn open(path: &Path, config_dir: Option<&Path>) -> Result<Self> {
        let header = Header::read(path)?;
        require_sdxl(&header)?;
        let configs = match config_dir {
            Some(d) => ConfigSource::Dir(DirSource::new(d)),
            None => ConfigSource::Shipped,
        };
        let cfgs = read_configs(configs.src())?;
        check_architecture(&header, &cfgs, config_dir)?;
        let file = FileTensors::with_headers(vec![header])?;
        let vae_map = keymap::vae(cfgs.vae.block_out_channels.len(), cfgs.vae.layers_per_block);
        let maps = [
            keymap::unet(&cfgs.unet)?,
            vae_map,
            keymap::clip_l(),
            keymap::open_clip_g(),
        ]
        .map(Arc::new);
        Ok(Self {
            path: path.into(),
            configs,
            file: Arc::new(file),
            maps,
        })
    }
}

/// The key maps of a diffusers folder's four weighted components, as `(subfolder, file
/// stem, map)` for `unet`, `vae`, `text_encoder` and `text_encoder_2`: from each
/// diffusers key, [`KeyMap::source`] gives the single-file key it is read from (and how).
/// Built from the folder's `unet/config.json` and `vae/config.json`.
pub fn folder_key_maps(dir: &Path) -> Result<[(&'static str, &'static str, KeyMap); 4]> {
    let src = DirSource::new(dir);
    let unet: UNetConfig = read_json(&src, "unet/config.json")?;
    let vae: VaeConfig = read_json(&src, "vae/config.json")?;
    Ok([
        ("unet", "diffusion_pytorch_model", keymap::unet(&unet)?),
        (
            "vae",
            "diffusion_pytorch_model",
            keymap::vae(vae.block_out_channels.len(), vae.layers_per_block),
        ),
        ("text_encoder", "model", keymap::clip_l()),
        ("text_encoder_2", "model", keymap::open_clip_g()),
    ])
}

/// Reads and checks the four weighted components' configs.
pub(crate) fn read_configs(src: &dyn ModelSource) -> Result<Configs> {
    let unet: UNetConfig = read_json(src, "unet/config.json")?;
    unet.validate()?;
    let vae: VaeConfig = read_json(src, "vae/config.json")?;
    vae.validate()?;
    let te1: ClipConfig = read_json(src, "text_encoder/config.json")?;
    let te2: ClipConfig = read_json(src, "text_encoder_2/config.json")?;
    Ok(Configs { unet, vae, te1, te2 })
}

/// Fails, saying what the file is, unless it is an SDXL checkpoint.
fn require_sdxl(h: &Header) -> Result<()> {
    let kind = FileKind::classify(h);
    if kind == FileKind::SdxlCheckpoint {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "{} is {}, not an SDXL checkpoint: {}",
        h.path.display(),
        kind.describe(),
        kind.advice()
    )))
}

fn check_architecture(h: &Header, cfgs: &Configs, config_dir: Option<&Path>) -> Result<()> {
    let diffs = Architecture::from_header(h).differences(&Architecture::from_configs(cfgs)?);
    if diffs.is_empty() {
        return Ok(());
    }
    let hint = match config_dir {
        None => "it is not SDXL-base-shaped; if it is an SDXL model of other widths, pass --config DIR \
                 (a diffusers folder whose config.json files describe it)"
            .to_string(),
        Some(d) => format!(
            "the configs in {} do not describe this checkpoint: pass the folder it was made from",
            d.display()
        ),
    };
    let configs = config_dir.map_or("Easel's SDXL-base configs".to_string(), |d| d.display().to_string());
    Err(Error::Config {
        path: h.path.clone(),
        msg: format!("its tensor shapes differ from {configs}: {}; {hint}", diffs.join(", ")),
    })
}

/// The component a diffusers subfolder name stands for, as an index into `maps`.
fn component_slot(sub: &str) -> Option<usize> {
    ["unet", "vae", "text_encoder", "text_encoder_2"]
        .iter()
        .position(|s| *s == sub)
}

impl ModelSource for SingleFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&self, rel: &str) -> Result<Cow<'_, [u8]>> {
        self.configs.src().read(rel)
    }

    fn exists(&self, rel: &str) -> bool {
        self.configs.src().exists(rel)
    }

    fn path(&self, rel: &str) -> Option<PathBuf> {
        self.configs.src().path(rel)
    }
}

impl Components for SingleFile {
    fn files(&self) -> &dyn ModelSource {
        self
    }

    /// The checkpoint's own tensors, renamed to the diffusers layout, for the four weighted
    /// components; other components' files come from the configs.
    fn weights(&self, sub: &str, stem: &str, variant: &Variant, dtype: DType) -> Result<ComponentWeights> {
        let Some(slot) = component_slot(sub) else {
            return crate::weights::find(self, sub, stem, variant, dtype);
        };
        let map = self.maps[slot].clone();
        let file = self.file.clone();
        let label = format!("{} ({sub})", self.path.display());
        Ok(ComponentWeights::custom(
            label,
            Arc::new(move |dtype, device| Ok(LdmBackend::var_builder(file.clone(), map.clone(), dtype, device))),
        ))
    }

    /// The config folder's tokenizer when it has one, else the embedded CLIP vocabulary.
    fn tokenizer(&self, sub: &str) -> Result<ClipTokenizer> {
        if self.configs.src().exists(&format!("{sub}/vocab.json")) {
            return ClipTokenizer::from_source(self, sub);
        }
        // SDXL's first tokenizer pads with <|endoftext|>, the second with "!" (id 0).
        let pad = if sub == "tokenizer_2" { "!" } else { "<|endoftext|>" };
        ClipTokenizer::embedded(pad)
    }
}
