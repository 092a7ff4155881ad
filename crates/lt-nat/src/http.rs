//! The little HTTP/1.1 this crate needs: `http://` URLs with IP-literal hosts, GET and POST
//! requests, and a bounded response parser (Content-Length, chunked, or read to EOF).
//!
//! It is for talking to a gateway on the LAN, not a general client: no TLS, no redirects, no
//! host names (an IGD's LOCATION and control URLs are IP literals; a name would need a resolver
//! and would let a LAN host point us elsewhere).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::error::Error;
use crate::limits::{MAX_HTTP_BODY, MAX_HTTP_HEADER, MAX_XML_TEXT};

/// An `http://` URL whose host is an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    /// Host address.
    pub host: IpAddr,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://<IPv4>[:port][/path]` or `http://[<IPv6>][:port][/path]`.
    ///
    /// # Errors
    /// [`Error::BadUrl`] for anything else (other schemes, host names, bad ports, control
    /// characters, more than [`MAX_XML_TEXT`] bytes).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.len() > MAX_XML_TEXT || text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(Error::BadUrl);
        }
        let rest = strip_prefix_ignore_case(text, "http://").ok_or(Error::BadUrl)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(Error::BadUrl);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or(Error::BadUrl)?;
            let host: IpAddr = v6[..end]
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| Error::BadUrl)?
                .into();
            (host, &v6[end + 1..])
        } else {
            match authority.find(':') {
                Some(i) => (
                    IpAddr::V4(authority[..i].parse().map_err(|_| Error::BadUrl)?),
                    &authority[i..],
                ),
                None => (
                    IpAddr::V4(authority.parse().map_err(|_| Error::BadUrl)?),
                    "",
                ),
            }
        };
        let port = match port {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or(Error::BadUrl)?,
        };
        Ok(Self {
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// Resolves `reference` against this URL: an absolute `http://` URL, an absolute path, or
    /// a path relative to this URL's directory.
    ///
    /// # Errors
    /// [`Error::BadUrl`] when the result is not a valid URL.
    pub fn join(&self, reference: &str) -> Result<Self, Error> {
        let reference = reference.trim();
        if strip_prefix_ignore_case(reference, "http://").is_some() {
            return Self::parse(reference);
        }
        if reference.contains("://") {
            return Err(Error::BadUrl);
        }
        let path = if reference.starts_with('/') {
            reference.to_owned()
        } else {
            let dir = self.path.rfind('/').map_or("/", |i| &self.path[..=i]);
            format!("{dir}{reference}")
        };
        let url = Self {
            host: self.host,
            port: self.port,
            path,
        };
        // Re-parse to apply the same checks to the joined text.
        Self::parse(&url.to_string())
    }

    /// Where to connect.
    #[must_use]
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    fn host_header(&self) -> String {
        match self.host {
            IpAddr::V4(a) => format!("{a}:{}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.path)
    }
}

/// A `GET` request for `url` (with `Connection: close`).
#[must_use]
pub fn get_request(url: &HttpUrl) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: lt-nat\r\n\r\n",
        url.path,
        url.host_header()
    )
    .into_bytes()
}

/// A SOAP `POST` to `url`.
#[must_use]
pub fn soap_request(url: &HttpUrl, soap_action: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: lt-nat\r\n\
         Content-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: {}\r\n\
         SOAPAction: \"{soap_action}\"\r\n\r\n",
        url.path,
        url.host_header(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body (de-chunked), at most [`MAX_HTTP_BODY`] bytes.
    pub body: Vec<u8>,
}

/// Parses the response received so far. `eof` says the peer closed the connection.
///
/// Returns `Ok(None)` when more bytes are needed. Never buffers more than
/// [`MAX_HTTP_HEADER`] + [`MAX_HTTP_BODY`] worth of meaning: callers should stop reading when
/// `buf` exceeds [`max_response_len`].
///
/// # Errors
/// When the header or body exceeds its limit, the response is malformed, or it ended early.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<HttpResponse>, Error> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HTTP_HEADER {
            return Err(Error::HttpHeaderTooLong {
                max: MAX_HTTP_HEADER,
            });
        }
        return if eof {
            Err(Error::HttpTruncated)
        } else {
            Ok(None)
        };
    };
    if head_end > MAX_HTTP_HEADER {
        return Err(Error::HttpHeaderTooLong {
            max: MAX_HTTP_HEADER,
        });
    }
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Error::HttpMalformed)?;
    let mut lines = head.split("\r\n");
    let status = parse_status_line(lines.next().unwrap_or_default())?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(Error::HttpMalformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let len: usize = value.parse().map_err(|_| Error::HttpMalformed)?;
            if content_length.is_some_and(|l| l != len) {
                return Err(Error::HttpMalformed);
            }
            content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
            if !chunked {
                return Err(Error::HttpMalformed);
            }
        }
    }
    let rest = &buf[head_end + 4..];
    let body = if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None if eof => return Err(Error::HttpTruncated),
            None => return Ok(None),
        }
    } else if let Some(len) = content_length {
        if len > MAX_HTTP_BODY {
            return Err(Error::HttpBodyTooLong {
                len,
                max: MAX_HTTP_BODY,
            });
        }
        match rest.get(..len) {
            Some(body) => body.to_vec(),
            None if eof => return Err(Error::HttpTruncated),
            None => return Ok(None),
        }
    } else {
        if rest.len() > MAX_HTTP_BODY {
            return Err(Error::HttpBodyTooLong {
                len: rest.len(),
                max: MAX_HTTP_BODY,
            });
        }
        if !eof {
            return Ok(None);
        }
        rest.to_vec()
    };
    Ok(Some(HttpResponse { status, body }))
}

/// The most bytes worth reading for one response: past this, [`parse_response`] fails.
#[must_use]
pub const fn max_response_len() -> usize {
    // Chunk-size lines add a little; 2 KiB of slack covers them at sane chunk sizes.
    MAX_HTTP_HEADER + 4 + MAX_HTTP_BODY + 2048
}

fn parse_status_line(line: &str) -> Result<u16, Error> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(Error::HttpMalformed);
    }
    parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(Error::HttpMalformed)
}

/// De-chunks a chunked body; `Ok(None)` when incomplete.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return if rest.len() > 64 {
                Err(Error::HttpMalformed)
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| Error::HttpMalformed)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        if size_text.is_empty() || size_text.len() > 8 {
            return Err(Error::HttpMalformed);
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Error::HttpMalformed)?;
        let total = body.len().saturating_add(size);
        if total > MAX_HTTP_BODY {
            return Err(Error::HttpBodyTooLong {
                len: total,
                max: MAX_HTTP_BODY,
            });
        }
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers are not used by gateways; the body is complete.
            return Ok(Some(body));
        }
        let Some(chunk) = rest.get(..size) else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        rest = &rest[size..];
        match rest.get(..2) {
            Some(b"\r\n") => rest = &rest[2..],
            Some(_) => return Err(Error::HttpMalformed),
            None => return Ok(None),
        }
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://192.168.77.1:5000/rootDesc.xml").unwrap();
        assert_eq!(u.socket_addr(), "192.168.77.1:5000".parse().unwrap());
        assert_eq!(u.path, "/rootDesc.xml");
        assert_eq!(u.to_string(), "http://192.168.77.1:5000/rootDesc.xml");
        assert_eq!(
            u.join("/ctl/IPConn").unwrap().to_string(),
            "http://192.168.77.1:5000/ctl/IPConn"
        );
        assert_eq!(u.join("ctl/IPConn").unwrap().path, "/ctl/IPConn");
        let v6 = HttpUrl::parse("HTTP://[fe80::1]/x").unwrap();
        assert_eq!(v6.port, 80);
        assert_eq!(v6.to_string(), "http://[fe80::1]:80/x");
        for bad in [
            "https://1.2.3.4/",
            "http://router.lan/",
            "http://1.2.3.4:0/",
            "http://1.2.3.4:99999/",
            "http://u@1.2.3.4/",
            "http://1.2.3.4/a b",
            "ftp://x",
        ] {
            assert_eq!(HttpUrl::parse(bad), Err(Error::BadUrl), "{bad}");
        }
        assert_eq!(u.join("ftp://1.2.3.4/"), Err(Error::BadUrl));
    }

    #[test]
    fn responses() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for n in 0..full.len() {
            assert_eq!(parse_response(&full[..n], false), Ok(None), "{n}");
            assert!(parse_response(&full[..n], true).is_err());
        }
        assert_eq!(
            parse_response(full, false),
            Ok(Some(HttpResponse {
                status: 200,
                body: b"hello".to_vec()
            }))
        );
        let chunked = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false),
            Ok(Some(HttpResponse {
                status: 500,
                body: b"abcde".to_vec()
            }))
        );
        let to_eof = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody";
        assert_eq!(parse_response(to_eof, false), Ok(None));
        assert_eq!(parse_response(to_eof, true).unwrap().unwrap().body, b"body");
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n";
        assert!(matches!(
            parse_response(huge, false),
            Err(Error::HttpBodyTooLong { .. })
        ));
        let endless_header = vec![b'a'; MAX_HTTP_HEADER + 1];
        assert!(matches!(
            parse_response(&endless_header, false),
            Err(Error::HttpHeaderTooLong { .. })
        ));
        assert_eq!(
            parse_response(b"SIP/2.0 200 OK\r\n\r\n", true),
            Err(Error::HttpMalformed)
        );
    }

    #[quickcheck]
    fn parse_never_panics(data: Vec<u8>, eof: bool) -> bool {
        let _ = parse_response(&data, eof);
        let _ = HttpUrl::parse(&String::from_utf8_lossy(&data));
        true
    }
}
