//! Why this exists: the bytes that go to storage — each image as a PNG carrying its
//! generation parameters (A1111's `parameters` text chunk), and a thumbnail whose longest edge
//! is 256 px, as lossy WebP at the Python worker's quality (libwebp, through the `webp` crate:
//! the `image` crate only encodes lossless WebP, several times larger).

use image::imageops::FilterType;
use image::RgbImage;

/// Longest edge of a thumbnail, as the contract says.
pub const THUMBNAIL_EDGE: u32 = 256;
/// WebP quality of thumbnails: the Python worker's 85.
pub const THUMBNAIL_QUALITY: f32 = 85.0;

/// An encoding failure.
#[derive(Debug, thiserror::Error)]
#[error("encoding {what}: {msg}")]
pub struct EncodeError {
    pub what: &'static str,
    pub msg: String,
}

/// The PNG of `img` with `parameters` in its text chunk.
pub fn png(img: &RgbImage, parameters: &str) -> Result<Vec<u8>, EncodeError> {
    easel_sdxl::metadata::encode_png(img, parameters).map_err(|e| EncodeError {
        what: "PNG",
        msg: e.to_string(),
    })
}

/// The thumbnail of `img`: longest edge [`THUMBNAIL_EDGE`] (never upscaled), WebP.
pub fn thumbnail(img: &RgbImage) -> Result<Vec<u8>, EncodeError> {
    let (w, h) = thumbnail_size(img.width(), img.height());
    let small = if (w, h) == img.dimensions() {
        img.clone()
    } else {
        image::imageops::resize(img, w, h, FilterType::Lanczos3)
    };
    let encoded = webp::Encoder::from_rgb(small.as_raw(), w, h).encode_simple(false, THUMBNAIL_QUALITY);
    let memory = encoded.map_err(|e| EncodeError {
        what: "WebP thumbnail",
        msg: format!("{e:?}"),
    })?;
    Ok(memory.to_vec())
}

/// The size of a thumbnail of a `w`×`h` image.
pub fn thumbnail_size(w: u32, h: u32) -> (u32, u32) {
    let longest = w.max(h).max(1);
    if longest <= THUMBNAIL_EDGE {
        return (w, h);
    }
    let scale = |x: u32| ((x as u64 * THUMBNAIL_EDGE as u64 + longest as u64 / 2) / longest as u64).max(1) as u32;
    (scale(w), scale(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_have_a_256_px_longest_edge_and_are_webp() {
        assert_eq!(thumbnail_size(1024, 1024), (256, 256));
        assert_eq!(thumbnail_size(1024, 512), (256, 128));
        assert_eq!(thumbnail_size(64, 64), (64, 64));
        let bytes = thumbnail(&RgbImage::new(512, 256)).unwrap();
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(&bytes[8..12], b"WEBP");
        assert_eq!(&bytes[12..16], b"VP8 ", "lossy WebP (VP8), not lossless (VP8L)");
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (256, 128));
    }
}
