//! Why this exists: every architecture number comes from the model's own `config.json`
//! files (diffusers' UNet2DConditionModel, AutoencoderKL, transformers' CLIPTextConfig),
//! so the tiny test model and real SDXL checkpoints run the same code. Options this
//! engine does not implement are rejected with [`Error::Unsupported`] instead of being
//! silently ignored.

use serde::Deserialize;

use crate::{Error, Result};

/// A value that diffusers accepts either as one number or as one per block.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    /// The value for each of `n` blocks.
    pub fn expand(&self, n: usize, key: &str) -> Result<Vec<usize>> {
        match self {
            PerBlock::One(v) => Ok(vec![*v; n]),
            PerBlock::Each(v) if v.len() == n => Ok(v.clone()),
            PerBlock::Each(v) => Err(Error::Unsupported(format!(
                "unet config `{key}` has {} entries but the model has {n} blocks",
                v.len()
            ))),
        }
    }
}

fn default_groups() -> usize {
    32
}
fn default_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_one() -> f64 {
    1.0
}
fn default_default() -> String {
    "default".into()
}

/// diffusers' `UNet2DConditionModel` config (the keys SDXL uses).
#[derive(Clone, Debug, Deserialize)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    #[serde(default = "default_true")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default)]
    pub mid_block_type: Option<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: PerBlock,
    #[serde(default = "default_one_usize")]
    pub downsample_padding: usize,
    #[serde(default = "default_one")]
    pub mid_block_scale_factor: f64,
    #[serde(default = "default_groups")]
    pub norm_num_groups: usize,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    pub cross_attention_dim: PerBlock,
    #[serde(default = "default_one_block")]
    pub transformer_layers_per_block: PerBlock,
    #[serde(default)]
    pub attention_head_dim: Option<PerBlock>,
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub addition_time_embed_dim: Option<usize>,
    #[serde(default)]
    pub projection_class_embeddings_input_dim: Option<usize>,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub encoder_hid_dim: Option<usize>,
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    #[serde(default)]
    pub dual_cross_attention: bool,
    #[serde(default)]
    pub only_cross_attention: serde_json::Value,
    #[serde(default = "default_default")]
    pub resnet_time_scale_shift: String,
    #[serde(default)]
    pub time_embedding_type: Option<String>,
    #[serde(default)]
    pub reverse_transformer_layers_per_block: Option<serde_json::Value>,
    #[serde(default)]
    pub act_fn: Option<String>,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default)]
    pub conv_in_kernel: Option<usize>,
    #[serde(default)]
    pub conv_out_kernel: Option<usize>,
    #[serde(default)]
    pub attention_type: Option<String>,
    #[serde(default)]
    pub sample_size: Option<usize>,
}

fn default_one_usize() -> usize {
    1
}
fn default_one_block() -> PerBlock {
    PerBlock::One(1)
}

/// Fails with a clear message when a config key asks for something unimplemented.
fn reject(cond: bool, what: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Err(Error::Unsupported(format!(
            "{}; Easel runs SDXL-style UNets only",
            what()
        )))
    } else {
        Ok(())
    }
}

impl UNetConfig {
    /// Rejects UNet options this engine does not implement.
    pub fn validate(&self) -> Result<()> {
        let n = self.block_out_channels.len();
        reject(n == 0, || "unet config has no block_out_channels".into())?;
        reject(
            self.down_block_types.len() != n || self.up_block_types.len() != n,
            || "unet config: down/up block type lists differ in length from block_out_channels".into(),
        )?;
        for t in self.down_block_types.iter().chain(&self.up_block_types) {
            let known = ["DownBlock2D", "CrossAttnDownBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"];
            reject(!known.contains(&t.as_str()), || format!("unet block type `{t}`"))?;
        }
        let mid = self.mid_block_type.as_deref().unwrap_or("UNetMidBlock2DCrossAttn");
        reject(mid != "UNetMidBlock2DCrossAttn", || {
            format!("unet mid_block_type `{mid}`")
        })?;
        reject(self.class_embed_type.is_some(), || "unet class_embed_type".into())?;
        reject(self.encoder_hid_dim.is_some(), || "unet encoder_hid_dim".into())?;
        reject(self.time_cond_proj_dim.is_some(), || {
            "unet time_cond_proj_dim (LCM-style)".into()
        })?;
        reject(self.dual_cross_attention, || "unet dual_cross_attention".into())?;
        reject(self.center_input_sample, || "unet center_input_sample".into())?;
        reject(
            !matches!(
                self.only_cross_attention,
                serde_json::Value::Null | serde_json::Value::Bool(false)
            ),
            || "unet only_cross_attention".into(),
        )?;
        reject(self.resnet_time_scale_shift != "default", || {
            format!("unet resnet_time_scale_shift `{}`", self.resnet_time_scale_shift)
        })?;
        let tet = self.time_embedding_type.as_deref().unwrap_or("positional");
        reject(tet != "positional", || format!("unet time_embedding_type `{tet}`"))?;
        let act = self.act_fn.as_deref().unwrap_or("silu");
        reject(act != "silu", || format!("unet act_fn `{act}`"))?;
        let att = self.attention_type.as_deref().unwrap_or("default");
        reject(att != "default", || format!("unet attention_type `{att}`"))?;
        reject(
            self.conv_in_kernel.unwrap_or(3) != 3 || self.conv_out_kernel.unwrap_or(3) != 3,
            || "unet conv_in_kernel/conv_out_kernel other than 3".into(),
        )?;
        reject(
            self.reverse_transformer_layers_per_block
                .as_ref()
                .is_some_and(|v| !v.is_null()),
            || "unet reverse_transformer_layers_per_block".into(),
        )?;
        match self.addition_embed_type.as_deref() {
            None => Ok(()),
            Some("text_time") => {
                reject(self.addition_time_embed_dim.is_none(), || {
                    "text_time without addition_time_embed_dim".into()
                })?;
                reject(self.projection_class_embeddings_input_dim.is_none(), || {
                    "text_time without projection_class_embeddings_input_dim".into()
                })
            }
            Some(other) => reject(true, || format!("unet addition_embed_type `{other}`")),
        }
    }

    /// Heads per block: `num_attention_heads`, or diffusers' legacy `attention_head_dim`.
    pub fn heads(&self) -> Result<Vec<usize>> {
        let n = self.block_out_channels.len();
        match (&self.num_attention_heads, &self.attention_head_dim) {
            (Some(h), _) => h.expand(n, "num_attention_heads"),
            (None, Some(h)) => h.expand(n, "attention_head_dim"),
            (None, None) => Ok(vec![8; n]),
        }
    }
}

fn default_scaling() -> f64 {
    0.18215
}

/// diffusers' `AutoencoderKL` config.
#[derive(Clone, Debug, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "default_three")]
    pub in_channels: usize,
    #[serde(default = "default_three")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "default_one_usize")]
    pub layers_per_block: usize,
    #[serde(default = "default_four")]
    pub latent_channels: usize,
    #[serde(default = "default_groups")]
    pub norm_num_groups: usize,
    #[serde(default = "default_scaling")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "default_true")]
    pub use_quant_conv: bool,
    #[serde(default = "default_true")]
    pub use_post_quant_conv: bool,
    #[serde(default = "default_true")]
    pub mid_block_add_attention: bool,
    #[serde(default)]
    pub force_upcast: bool,
    #[serde(default)]
    pub down_block_types: Vec<String>,
    #[serde(default)]
    pub up_block_types: Vec<String>,
    #[serde(default)]
    pub act_fn: Option<String>,
    #[serde(default)]
    pub latents_mean: Option<serde_json::Value>,
}

fn default_three() -> usize {
    3
}
fn default_four() -> usize {
    4
}

impl VaeConfig {
    /// Rejects VAE options this engine does not implement.
    pub fn validate(&self) -> Result<()> {
        reject(self.block_out_channels.is_empty(), || {
            "vae config has no block_out_channels".into()
        })?;
        for t in &self.down_block_types {
            reject(t != "DownEncoderBlock2D", || format!("vae down block type `{t}`"))?;
        }
        for t in &self.up_block_types {
            reject(t != "UpDecoderBlock2D", || format!("vae up block type `{t}`"))?;
        }
        let act = self.act_fn.as_deref().unwrap_or("silu");
        reject(act != "silu", || format!("vae act_fn `{act}`"))?;
        reject(self.latents_mean.as_ref().is_some_and(|v| !v.is_null()), || {
            "vae latents_mean".into()
        })
    }

    /// Pixels per latent along each side: 2^(blocks − 1).
    pub fn scale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// transformers' `CLIPTextConfig`.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub projection_dim: Option<usize>,
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
}

fn default_positions() -> usize {
    77
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_ln_eps() -> f64 {
    1e-5
}
fn default_eos() -> u32 {
    2
}

impl ClipConfig {
    /// Rejects activations this engine does not implement.
    pub fn validate(&self) -> Result<()> {
        let known = ["quick_gelu", "gelu"];
        reject(!known.contains(&self.hidden_act.as_str()), || {
            format!("text encoder hidden_act `{}`", self.hidden_act)
        })?;
        reject(
            self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads),
            || "text encoder hidden_size not divisible by num_attention_heads".into(),
        )
    }
}

/// The pipeline-level settings of `model_index.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct PipelineConfig {
    #[serde(default = "default_true")]
    pub force_zeros_for_empty_prompt: bool,
}
