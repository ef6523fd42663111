//! Hiding secrets in what is logged and shown. One home, so the topology's error messages,
//! the camera's logs and events, and the remote tier's errors hide a URL's credentials the
//! same way.

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

/// `text` with the query of every `http://` or `https://` URL in it hidden: an object store
/// client's error names the request's URL, and with a SAS token (Azure) or a presigned request
/// the query is the credential.
pub fn redact_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("http://").or_else(|| rest.find("https://")) {
        let (before, url_on) = rest.split_at(at);
        out.push_str(before);
        let end = url_on.find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '>').unwrap_or(url_on.len());
        let url = &url_on[..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?***");
            }
            None => out.push_str(url),
        }
        rest = &url_on[end..];
    }
    out.push_str(rest);
    out
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

    #[test]
    fn url_queries_are_hidden_in_messages() {
        assert_eq!(
            redact_url_queries("PUT https://a.blob.core.windows.net/c/k?sv=1&sig=SECRET failed: 403"),
            "PUT https://a.blob.core.windows.net/c/k?*** failed: 403"
        );
        assert_eq!(redact_url_queries("GET http://127.0.0.1:9/b/k in 3ms"), "GET http://127.0.0.1:9/b/k in 3ms");
        assert_eq!(
            redact_url_queries("<a href='http://x/y?t=s'> and http://z/?q"),
            "<a href='http://x/y?***'> and http://z/?***"
        );
    }
}
