//! Web seed I/O: runs the engine's [`WebRequest`]s with reqwest (rustls with certificate
//! checks, keep-alive connections, redirects followed, no compression asked for) and hands
//! the bytes back in order as [`Input::WebData`], then [`Input::WebDone`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lt_engine::web::{WebError, WebPart, WebRequest};
use lt_engine::{Input, IpFilter};
use reqwest::StatusCode;
use reqwest::header::{RANGE, RETRY_AFTER};
use tokio::sync::mpsc;

use crate::driver::Event;

/// Zeros for pad files, handed out in slices without a copy.
static ZEROS: [u8; 16384] = [0; 16384];

/// The HTTP client web seeds are fetched with: connections kept alive between requests,
/// no `Accept-Encoding` (a compressed body is not the file's bytes), up to 5 redirects.
pub(crate) fn client(
    user_agent: &str,
    timeout: Duration,
    proxy: Option<&crate::ProxySettings>,
) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .use_rustls_tls()
        .gzip(false)
        .redirect(reqwest::redirect::Policy::limited(5))
        .connect_timeout(timeout);
    // An empty user agent (anonymous mode) sends no User-Agent header at all.
    let builder = if user_agent.is_empty() {
        builder
    } else {
        builder.user_agent(user_agent)
    };
    crate::proxy::route(builder, proxy)?.build()
}

fn error(status: Option<u16>, message: impl Into<String>) -> WebError {
    WebError {
        status,
        retry_after: None,
        message: message.into(),
    }
}

/// Runs one request and reports how it ended.
/// Without a client (the proxy settings could not be made into one) nothing is fetched.
/// An error names the proxy `via` when the request went through one (an HTTP status may be
/// the proxy's own: tinyproxy refuses a password with 401).
pub(crate) async fn fetch(
    client: Option<reqwest::Client>,
    req: WebRequest,
    timeout: Duration,
    filter: Arc<IpFilter>,
    via: Option<String>,
    tx: mpsc::Sender<Event>,
) {
    let result = match &client {
        Some(client) => run(client, &req, timeout, &filter, &tx).await,
        None => Err(error(None, crate::proxy::UNUSABLE)),
    }
    .map_err(|mut e| {
        if let Some(p) = &via {
            e.message = format!("through proxy {p}: {}", e.message);
        }
        e
    });
    let done = Input::WebDone {
        seed: req.seed,
        request: req.request,
        result,
    };
    let _ = tx.send(Event::Engine(done)).await;
}

async fn run(
    client: &reqwest::Client,
    req: &WebRequest,
    timeout: Duration,
    filter: &IpFilter,
    tx: &mpsc::Sender<Event>,
) -> Result<(), WebError> {
    let send = |data: Bytes| {
        let input = Input::WebData {
            seed: req.seed,
            request: req.request,
            data,
        };
        tx.send(Event::Engine(input))
    };
    for part in &req.parts {
        match part {
            WebPart::Zeros(len) => {
                let mut left = *len;
                while left > 0 {
                    let n = usize::try_from(left.min(ZEROS.len() as u64)).unwrap_or(0);
                    if send(Bytes::from_static(&ZEROS[..n])).await.is_err() {
                        return Ok(());
                    }
                    left -= n as u64;
                }
            }
            WebPart::Get {
                url,
                range_header,
                start,
                len,
            } => {
                check_filter(url, filter).await?;
                get(client, url, *range_header, *start, *len, timeout, &send).await?;
            }
        }
    }
    Ok(())
}

/// Refuses a URL whose host is blocked by the IP filter (every address it resolves to).
async fn check_filter(url: &str, filter: &IpFilter) -> Result<(), WebError> {
    if filter.is_empty() {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| error(None, e.to_string()))?;
    let host = parsed.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(80);
    let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| error(None, format!("{host}: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    if ips.iter().all(|ip| filter.access(*ip).is_blocked()) {
        return Err(error(None, format!("{host} is blocked by the IP filter")));
    }
    Ok(())
}

/// The wait a refusal asks for: a `Retry-After` header in seconds, or a BEP 17 503 body
/// holding the seconds.
fn retry_after(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<Duration> {
    let secs = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .or_else(|| {
            std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        })?;
    Some(Duration::from_secs(secs.min(24 * 3600)))
}

async fn get<F, Fut>(
    client: &reqwest::Client,
    url: &str,
    range_header: bool,
    start: u64,
    len: u64,
    timeout: Duration,
    send: &F,
) -> Result<(), WebError>
where
    F: Fn(Bytes) -> Fut,
    Fut: Future<Output = Result<(), mpsc::error::SendError<Event>>>,
{
    if len == 0 {
        return Ok(());
    }
    let mut rb = client.get(url);
    if range_header {
        rb = rb.header(RANGE, format!("bytes={start}-{}", start + len - 1));
    }
    let mut resp = tokio::time::timeout(timeout, rb.send())
        .await
        .map_err(|_| error(None, format!("{url}: no answer in {timeout:?}")))?
        .map_err(|e| error(None, format!("{url}: {}", crate::error_chain(&e))))?;
    let status = resp.status();
    let ok = if range_header {
        status == StatusCode::PARTIAL_CONTENT || (status == StatusCode::OK && start == 0)
    } else {
        status == StatusCode::OK
    };
    if !ok {
        let headers = resp.headers().clone();
        // A refusal's body is small; a few bytes of it say how long to wait (BEP 17).
        let body = tokio::time::timeout(timeout, resp.chunk())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .unwrap_or_default();
        let message = if status == StatusCode::OK {
            format!("{url}: the server ignores the Range header")
        } else {
            format!("{url}: {status}")
        };
        return Err(WebError {
            status: Some(status.as_u16()),
            retry_after: retry_after(&headers, &body[..body.len().min(32)]),
            message,
        });
    }
    let mut left = len;
    while left > 0 {
        let chunk = tokio::time::timeout(timeout, resp.chunk())
            .await
            .map_err(|_| error(None, format!("{url}: no data for {timeout:?}")))?
            .map_err(|e| error(None, format!("{url}: {}", crate::error_chain(&e))))?;
        let Some(mut chunk) = chunk else {
            return Err(error(
                Some(status.as_u16()),
                format!("{url}: the reply ended {left} bytes short"),
            ));
        };
        if chunk.len() as u64 > left {
            chunk.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        }
        left -= chunk.len() as u64;
        if send(chunk).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
