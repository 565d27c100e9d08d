//! Why this exists: image-to-image jobs name a reference image by URL. Fetching it is the one
//! place a job makes the worker reach an arbitrary server, so it is bounded: http/https only,
//! a time limit, a byte limit enforced while streaming, a pixel limit before decoding. The
//! image is then fitted to the job's size by scaling to cover and centre-cropping.
//!
//! Unless `EASEL_REFERENCE_ALLOW_PRIVATE` is set, the URL may only reach public addresses:
//! host names are resolved through a filter that drops loopback, private, link-local and
//! other internal addresses (so DNS cannot point a job at the worker's own network), and IP
//! literals are checked on the URL and on every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
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

/// Most redirects followed for one reference (reqwest's own default).
const MAX_REDIRECTS: usize = 10;

/// The HTTP client for reference images; `allow_private` lifts the public-address rule.
pub fn client(allow_private: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    let builder = if allow_private {
        builder
    } else {
        builder
            .dns_resolver(Arc::new(PublicOnly))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if literal_is_internal(attempt.url()) {
                    attempt.error("redirect to an internal address")
                } else {
                    attempt.follow()
                }
            }))
    };
    builder.build().unwrap_or_default()
}

/// Whether `url`'s host is an IP literal that is not public (names go through [`PublicOnly`]).
fn literal_is_internal(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip))
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, CGNAT,
/// unspecified, broadcast, documentation, multicast or unique-local). An IPv6 address that
/// carries an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is judged by
/// the IPv4 address it carries, since that is where a translator or tunnel sends the request.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    let cgnat = o[0] == 100 && (64..128).contains(&o[1]);
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_multicast()
        || cgnat
        || o[0] == 0
        || o[0] >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    let low32 = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6].iter().all(|&x| x == 0) {
        // IPv4-compatible `::a.b.c.d` (deprecated, still routed by some stacks); `::` and
        // `::1` land in 0.0.0.0/8, which is internal.
        return is_public_v4(low32);
    }
    match (s[0], s[1]) {
        // NAT64 well-known prefix 64:ff9b::/96: the IPv4 address is the last 32 bits.
        (0x64, 0xff9b) if s[2..6].iter().all(|&x| x == 0) => return is_public_v4(low32),
        // Local-use NAT64 64:ff9b:1::/48 (RFC 8215): a translator inside the operator's
        // network, never a public destination.
        (0x64, 0xff9b) if s[2] == 1 => return false,
        // 6to4 2002:AABB:CCDD::/48 tunnels to the IPv4 address AA.BB.CC.DD.
        (0x2002, _) => return is_public_v4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2]))),
        // Teredo 2001:0::/32: server IPv4 in bits 32..64, client IPv4 (inverted) in the last 32.
        (0x2001, 0) => {
            let server = Ipv4Addr::from((u32::from(s[2]) << 16) | u32::from(s[3]));
            return is_public_v4(server) && is_public_v4(Ipv4Addr::from(!u32::from(low32)));
        }
        // Documentation 2001:db8::/32.
        (0x2001, 0x0db8) => return false,
        _ => {}
    }
    let unique_local = (s[0] & 0xfe00) == 0xfc00;
    let link_local = (s[0] & 0xffc0) == 0xfe80;
    let site_local = (s[0] & 0xffc0) == 0xfec0;
    !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || unique_local || link_local || site_local)
}

/// A resolver that keeps only public addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let msg = format!("{host} resolves only to internal addresses");
                return Err(msg.into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Fetches and decodes `url` into RGB; unless `allow_private`, only from public addresses.
pub async fn fetch(http: &reqwest::Client, url: &str, allow_private: bool) -> Result<RgbImage, JobError> {
    let internal = reqwest::Url::parse(url).is_ok_and(|u| literal_is_internal(&u));
    if internal && !allow_private {
        return Err(fail(
            url,
            "points at an internal address; reference images must be public (EASEL_REFERENCE_ALLOW_PRIVATE=true lifts this)",
        ));
    }
    let bytes = download(http, url).await?;
    decode(&bytes).map_err(|m| fail(url, m))
}

/// An error and its sources, `outer: inner: ...` (reqwest hides the reason in the sources).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
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
        .map_err(|e| fail(url, format!("cannot fetch: {}", with_causes(&e))))?;
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

    #[test]
    fn only_public_unicast_addresses_are_public() {
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:0:808:808::f7f7:f7f7", // Teredo: server and client 8.8.8.8
        ];
        for ip in public {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        let internal = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            // IPv4-compatible, NAT64 (well-known and local-use), 6to4 and Teredo forms of
            // internal IPv4 addresses.
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
            "2001:0:808:808::80ff:fffe", // client 127.0.0.1 (inverted), public server
            "2001:0:7f00:1::f7f7:f7f7",  // server 127.0.0.1, public client
            "2001:db8::1",
        ];
        for ip in internal {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_reference_on_an_internal_address_is_refused_before_any_request() {
        let http = client(false);
        for url in [
            "http://127.0.0.1:9/x.png",
            "http://[::1]:9/x.png",
            "http://169.254.169.254/latest",
        ] {
            let err = fetch(&http, url, false).await.unwrap_err();
            assert!(err.to_string().contains("internal address"), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn a_host_name_that_resolves_to_loopback_is_refused() {
        let err = fetch(&client(false), "http://localhost:9/x.png", false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("internal addresses"), "{err}");
    }
}
