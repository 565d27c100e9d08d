//! Why this exists: image-to-image jobs name a reference image by URL. Fetching it is the one
//! place a job makes the worker reach an arbitrary server, so it is bounded: http/https only,
//! a time limit, a byte limit enforced while streaming, a pixel limit before decoding. The
//! image is then fitted to the job's size by scaling to cover and centre-cropping.

use std::time::Duration;

use image::imageops::FilterType;
use image::RgbImage;

use crate::contract::{ErrorKind, JobError};

/// Longest wait for a reference image (the Python worker's `timeout=30`).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reference download: 20 MB holds any sane photo; more is abuse or a mistake.
pub const MAX_BYTES: u64 = 20 * 1024 * 1024;
/// Largest decoded side: stops a small file that decodes to gigabytes (a "pixel bomb").
pub const MAX_SIDE: u32 = 8192;

/// Fetches and decodes `url` into RGB.
pub async fn fetch(http: &reqwest::Client, url: &str) -> Result<RgbImage, JobError> {
    let bytes = download(http, url).await?;
    decode(&bytes).map_err(|m| fail(url, m))
}

fn fail(url: &str, msg: impl std::fmt::Display) -> JobError {
    JobError::new(ErrorKind::ReferenceImage, format!("reference image {url}: {msg}"))
}

async fn download(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, JobError> {
    let mut resp = http
        .get(url)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| fail(url, format!("cannot fetch: {e}")))?;
    if !resp.status().is_success() {
        return Err(fail(
            url,
            format!("HTTP {}; check that the URL is public or signed", resp.status()),
        ));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BYTES) {
        return Err(fail(url, format!("larger than {MAX_BYTES} bytes")));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fail(url, format!("download interrupted: {e}")))?
    {
        if bytes.len() as u64 + chunk.len() as u64 > MAX_BYTES {
            return Err(fail(url, format!("larger than {MAX_BYTES} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable: {e}"))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("not a PNG, JPEG or WebP image ({e})"))?;
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!("{w}x{h} is larger than {MAX_SIDE} px on a side"));
    }
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode: {e}"))?;
    Ok(img.to_rgb8())
}

/// Scales `img` to cover `width`×`height`, then crops the centre.
pub fn cover(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let scale = f64::max(width as f64 / w.max(1) as f64, height as f64 / h.max(1) as f64);
    let (sw, sh) = (
        ((w as f64 * scale).ceil() as u32).max(width),
        ((h as f64 * scale).ceil() as u32).max(height),
    );
    let scaled = image::imageops::resize(img, sw, sh, FilterType::Lanczos3);
    image::imageops::crop_imm(&scaled, (sw - width) / 2, (sh - height) / 2, width, height).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_fills_the_target_without_stretching() {
        let img = RgbImage::new(200, 100);
        assert_eq!(cover(&img, 64, 64).dimensions(), (64, 64));
        assert_eq!(cover(&img, 128, 32).dimensions(), (128, 32));
    }

    #[test]
    fn garbage_bytes_are_rejected_with_a_reason() {
        assert!(decode(b"not an image").unwrap_err().contains("not a PNG"));
    }
}
