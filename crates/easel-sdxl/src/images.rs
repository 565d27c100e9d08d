//! Why this exists: conversions between image tensors ([B, 3, H, W] in [0, 1]) and RGB
//! images, done as diffusers does (`round(x · 255)` to 8 bits; init images scaled to
//! [-1, 1]), so PNGs match diffusers' output pixel for pixel.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::{Error, Result};

/// [B, 3, H, W] in [0, 1] → one RGB image per batch element.
pub fn to_rgb(images: &Tensor) -> Result<Vec<RgbImage>> {
    let (b, c, h, w) = images.dims4()?;
    if c != 3 {
        return Err(Error::invalid(format!("expected 3 channels, got {c}")));
    }
    let hwc = (images.clamp(0f32, 1f32)? * 255.0)?.round()?.permute((0, 2, 3, 1))?;
    let hwc = hwc.to_dtype(candle_core::DType::U8)?.to_device(&Device::Cpu)?;
    (0..b)
        .map(|i| {
            let data = hwc.get(i)?.flatten_all()?.to_vec1::<u8>()?;
            RgbImage::from_raw(w as u32, h as u32, data).ok_or_else(|| Error::invalid("image buffer size mismatch"))
        })
        .collect()
}

/// Loads an image file as RGB, with an error naming the file.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let img = image::open(path).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        msg: format!("{e}; use a PNG, JPEG or WebP file"),
    })?;
    Ok(img.to_rgb8())
}

/// RGB image → [1, 3, H, W] in [-1, 1] (diffusers' preprocessing without resizing).
pub fn to_tensor(img: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = img.dimensions();
    let data: Vec<f32> = img.as_raw().iter().map(|&p| p as f32 / 255.0).collect();
    let t = Tensor::from_vec(data, (h as usize, w as usize, 3), device)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?;
    Ok(((t * 2.0)? - 1.0)?)
}

/// Resizes to `width` × `height` if needed (Lanczos, as PIL's default for diffusers).
pub fn fit(img: RgbImage, width: u32, height: u32) -> RgbImage {
    if img.dimensions() == (width, height) {
        img
    } else {
        image::imageops::resize(&img, width, height, image::imageops::FilterType::Lanczos3)
    }
}
