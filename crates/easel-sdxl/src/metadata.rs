//! Why this exists: the generation parameters written into every PNG, in the text-chunk
//! convention A1111's web UI made standard (`parameters` key), so images can be
//! reproduced and are recognised by the tools people already use; and the PNG encoder
//! that writes them.

use std::io::Cursor;

use image::RgbImage;

use crate::pipeline::GenerateRequest;
use crate::schedulers::SchedulerKind;
use crate::{Error, Result};

/// The PNG text key A1111 and its readers use.
pub const PARAMETERS_KEY: &str = "parameters";

/// A1111-style parameters for image `index` of `req` (its seed is `seed + index`).
pub fn parameters(req: &GenerateRequest, index: usize, model: &str) -> String {
    let mut s = req.prompt.clone();
    if let Some(neg) = req.negative_prompt.as_deref().filter(|n| !n.is_empty()) {
        s.push_str(&format!("\nNegative prompt: {neg}"));
    }
    s.push_str(&format!(
        "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}",
        req.steps,
        a1111_sampler(req.scheduler),
        req.guidance,
        req.seed.wrapping_add(index as u64),
        req.width,
        req.height,
        model
    ));
    if let Some(init) = &req.init_image {
        s.push_str(&format!(", Denoising strength: {}", init.strength));
    }
    s.push_str(", Version: easel ");
    s.push_str(env!("CARGO_PKG_VERSION"));
    s
}

/// The sampler names A1111 writes.
pub fn a1111_sampler(kind: SchedulerKind) -> &'static str {
    match kind {
        SchedulerKind::Euler => "Euler",
        SchedulerKind::EulerAncestral => "Euler a",
        SchedulerKind::DpmPp2m => "DPM++ 2M",
        SchedulerKind::DpmPp2mKarras => "DPM++ 2M Karras",
        SchedulerKind::Ddim => "DDIM",
    }
}

/// Encodes an RGB image as PNG with a `parameters` text chunk.
pub fn encode_png(img: &RgbImage, parameters: &str) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    {
        let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_itxt_chunk(PARAMETERS_KEY.to_string(), parameters.to_string())
            .map_err(|e| Error::invalid(format!("cannot add PNG text: {e}")))?;
        let mut w = enc
            .write_header()
            .map_err(|e| Error::invalid(format!("PNG header: {e}")))?;
        w.write_image_data(img.as_raw())
            .map_err(|e| Error::invalid(format!("PNG data: {e}")))?;
    }
    Ok(out.into_inner())
}

/// Reads the `parameters` text back from a PNG (tEXt, zTXt or iTXt).
pub fn read_parameters(png_bytes: &[u8]) -> Option<String> {
    let dec = png::Decoder::new(Cursor::new(png_bytes));
    let reader = dec.read_info().ok()?;
    let info = reader.info();
    if let Some(t) = info.utf8_text.iter().find(|t| t.keyword == PARAMETERS_KEY) {
        return t.get_text().ok();
    }
    if let Some(t) = info
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == PARAMETERS_KEY)
    {
        return Some(t.text.clone());
    }
    info.compressed_latin1_text
        .iter()
        .find(|t| t.keyword == PARAMETERS_KEY)
        .and_then(|t| t.get_text().ok())
}
