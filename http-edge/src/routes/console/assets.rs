//! The console's static files, embedded in the binary at build time: htmx and its SSE
//! extension (vendored from npm by `scripts/vendor-console.sh`, see
//! `http-edge/console/vendor/VENDORED`) and the console's own stylesheet. No Node, no npm
//! and no file system at run time.
//!
//! `GET /console/assets/{name}`: served with a year-long `immutable` cache; pages link them
//! as `/console/assets/{name}?v={fingerprint}` ([`url`]), so a new build's files are new
//! URLs.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::html::Fragment;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const HTMX: Asset = Asset {
    name: "htmx.min.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../../console/vendor/htmx.min.js"),
};

pub const HTMX_SSE: Asset = Asset {
    name: "sse.min.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../../console/vendor/sse.min.js"),
};

pub const STYLESHEET: Asset = Asset {
    name: "console.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("../../../console/console.css"),
};

const ALL: [&Asset; 3] = [&HTMX, &HTMX_SSE, &STYLESHEET];

/// A year: the URLs carry the content's fingerprint.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

impl Asset {
    /// The URL pages link: the path and a fingerprint of the content.
    pub fn url(&self) -> String {
        format!("/console/assets/{}?v={:016x}", self.name, fnv1a(self.body))
    }
}

/// FNV-1a, 64 bits: a cache-busting fingerprint, not a security check.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ALL.into_iter().find(|asset| asset.name == name) else {
        return Fragment::error(StatusCode::NOT_FOUND, "no such console asset").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_FOREVER),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// The embedded vendor files are exactly the ones `VENDORED` records (a hand edit or a
    /// half-finished upgrade fails here).
    #[test]
    fn vendored_files_match_their_recorded_sha256() {
        let manifest = include_str!("../../../console/vendor/VENDORED");
        for asset in [&HTMX, &HTMX_SSE] {
            let line = manifest
                .lines()
                .find(|line| line.split(' ').next() == Some(asset.name))
                .unwrap_or_else(|| panic!("{} is not in VENDORED", asset.name));
            let recorded = line.split(' ').nth(4).unwrap();
            let actual = format!("{:x}", Sha256::digest(asset.body.as_bytes()));
            assert_eq!(actual, recorded, "{}", asset.name);
            assert!(line.contains(" 0BSD "), "{line}");
        }
    }

    #[test]
    fn asset_urls_change_with_their_content() {
        assert!(HTMX.url().starts_with("/console/assets/htmx.min.js?v="));
        assert_ne!(fnv1a("a"), fnv1a("b"));
    }
}
