//! Writing HTML by hand, safely: every value that did not come from this crate's own
//! literals goes through [`escape`] (text and attribute values alike) or, in a URL path,
//! [`path_segment`]. Fragments are answered as [`Fragment`]s: `text/html`, never cached.

use std::fmt::Write;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `text` with `& < > " '` replaced by entities: safe in element text and in quoted
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `segment` percent-encoded for one segment of a URL path (RFC 3986 unreserved characters
/// kept), so a node id with `/`, `?` or `#` stays one segment.
pub fn path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// An HTML answer: a whole page or a fragment htmx swaps in.
#[derive(Debug)]
pub struct Fragment {
    pub status: StatusCode,
    pub html: String,
}

impl Fragment {
    pub fn ok(html: String) -> Self {
        Self {
            status: StatusCode::OK,
            html,
        }
    }

    /// An error fragment: `message` in a red result box, with `status`.
    pub fn error(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            html: format!(
                r#"<div class="result error" role="alert">{}</div>"#,
                escape(message)
            ),
        }
    }
}

impl IntoResponse for Fragment {
    fn into_response(self) -> Response {
        (
            self.status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            self.html,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn a_path_segment_stays_one_segment() {
        assert_eq!(path_segment("node-3"), "node-3");
        assert_eq!(path_segment("a/b?c#d é"), "a%2Fb%3Fc%23d%20%C3%A9");
    }
}
