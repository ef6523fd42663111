//! Hiding secrets in what is logged and shown. One home, so the topology's error messages and
//! the camera's logs and events hide a URL's credentials the same way.

/// A URL with its user information (`user:password@`) hidden, even when it does not parse.
/// Everything between the scheme and the *last* `@` may be credentials: a password may hold
/// `/`, `:`, `?`, `#` or `@` unescaped (`rtsp://admin:pa/ss@cam/x` parses with host "admin"),
/// so no URL parser's idea of the user information is trusted. Hiding too much beats leaking.
pub fn redact_url(url: &str) -> String {
    let (head, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    match rest.rfind('@') {
        Some(at) => format!("{head}***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden() {
        assert_eq!(redact_url("rtsp://admin:s3cret@10.0.0.1:554/x"), "rtsp://***@10.0.0.1:554/x");
        assert_eq!(redact_url("rtsp://10.0.0.1/x"), "rtsp://10.0.0.1/x");
        assert_eq!(redact_url("rtsp://admin:1234/abc@cam/x"), "rtsp://***@cam/x");
        assert_eq!(redact_url("rtsp://a:b@c@cam:554/x"), "rtsp://***@cam:554/x");
        assert_eq!(redact_url("admin:pw@cam/x"), "***@cam/x");
    }
}
