//! Why this exists: `easel models inspect PATH [--json]` tells what a model file or folder
//! is — diffusers folder, single-file SDXL checkpoint, LoRA, VAE, something else — with its
//! components, dtype and parameter count, read from safetensors headers without loading any
//! weights. The engine does the reading (`easel_sdxl::inspect`); this file only prints.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use easel_sdxl::inspect::{inspect, Inspection, Layout};

/// Examples shown under `easel models --help`.
pub const EXAMPLES: &str = "Examples:
  easel models inspect ~/models/sdxl.safetensors
  easel models inspect ~/models/sdxl-base --json";

/// Examples shown under `easel models inspect --help`.
const INSPECT_EXAMPLES: &str = "Examples:
  easel models inspect ~/models/sdxl.safetensors
  easel models inspect lora.safetensors --json";

/// Arguments of `easel models`.
#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// Say what a model file or folder is (headers only; nothing is loaded).
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// A diffusers folder or a .safetensors file (checkpoint, LoRA, VAE, ...).
    path: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `easel models ...`.
pub fn run(args: ModelsArgs) -> Result<()> {
    match args.command {
        ModelsCommand::Inspect(a) => run_inspect(&a),
    }
}

fn run_inspect(args: &InspectArgs) -> Result<()> {
    let report = inspect(&args.path).with_context(|| format!("inspecting {}", args.path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// The human-readable report.
fn render(r: &Inspection) -> String {
    let mut out = format!("{}\n", r.path.display());
    out += &format!("  layout      {}: {}\n", layout_word(r.layout), r.description);
    out += &format!("  dtype       {}\n", r.dtype);
    out += &format!(
        "  parameters  {} ({})\n",
        thousands(r.parameters),
        short(r.parameters as f64, "")
    );
    out += &format!("  size        {}\n", short(r.bytes as f64, "B"));
    out += "  components\n";
    for c in &r.components {
        match &c.problem {
            Some(p) => out += &format!("    {:<28} {p}\n", c.name),
            None => {
                out += &format!(
                    "    {:<28} {:>15}  {:<5} {} tensors\n",
                    c.name,
                    thousands(c.parameters),
                    c.dtype,
                    c.tensors
                )
            }
        }
    }
    if let Some(a) = &r.architecture {
        let n = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
        out += &format!(
            "  architecture  UNet width {} (deepest {}), {} transformer blocks, context {}; VAE width {}; CLIP-L {}×{}; OpenCLIP-G {}×{}\n",
            n(a.unet_width),
            n(a.unet_deepest_width),
            n(a.unet_transformer_blocks),
            n(a.context_dim),
            n(a.vae_width),
            n(a.clip_l_layers),
            n(a.clip_l_width),
            n(a.clip_g_layers),
            n(a.clip_g_width)
        );
    }
    if let Some(l) = &r.lora {
        out += &format!(
            "  lora        {} layers, ranks {:?}, alphas {}\n",
            l.layers,
            l.ranks,
            if l.has_alphas { "stored" } else { "= rank" }
        );
    }
    if !r.metadata.is_empty() {
        out += &format!("  metadata    {} keys\n", r.metadata.len());
        for (k, v) in &r.metadata {
            out += &format!("    {k:<28} {}\n", shown_value(v));
        }
    }
    out
}

/// Longest metadata value printed whole in the text report (`--json` has them all).
const SHOWN_VALUE_CHARS: usize = 100;

/// A metadata value on one line: newlines escaped, long values cut with their length said.
fn shown_value(v: &str) -> String {
    let one_line = v.replace('\n', "\\n");
    let n = one_line.chars().count();
    if n <= SHOWN_VALUE_CHARS {
        return one_line;
    }
    let head: String = one_line.chars().take(SHOWN_VALUE_CHARS).collect();
    format!("{head}… ({} chars; --json shows all)", thousands(n as u64))
}

fn layout_word(l: Layout) -> &'static str {
    match l {
        Layout::DiffusersFolder => "diffusers folder",
        Layout::SingleFile => "single file",
        Layout::Lora => "LoRA",
        Layout::Vae => "VAE",
        Layout::Component => "component",
        Layout::Unknown => "unknown",
    }
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 3.47e9 → "3.47 G" (with `unit`).
fn short(v: f64, unit: &str) -> String {
    let (scaled, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .iter()
        .find(|(f, _)| v >= *f)
        .map_or((v, ""), |(f, p)| (v / f, *p));
    format!("{scaled:.2} {prefix}{unit}").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_numbers() {
        assert_eq!(thousands(2_567_463_684), "2,567,463,684");
        assert_eq!(thousands(12), "12");
        assert_eq!(short(3.47e9, ""), "3.47 G");
        assert_eq!(short(5_725_024.0, "B"), "5.73 MB");
        assert_eq!(short(12.0, ""), "12.00");
    }

    #[test]
    fn metadata_values_stay_on_one_short_line() {
        assert_eq!(shown_value("16"), "16");
        assert_eq!(shown_value("a\nb"), "a\\nb");
        let long = shown_value(&"x".repeat(2500));
        assert!(
            long.starts_with(&"x".repeat(100)) && long.ends_with("… (2,500 chars; --json shows all)"),
            "{long}"
        );
    }
}
