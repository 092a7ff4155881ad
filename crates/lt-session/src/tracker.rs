//! Tracker I/O: HTTP(S) announces and scrapes with reqwest (rustls, gzip, redirects, a
//! size-limited body), and UDP (BEP 15) with lt-tracker's state machine on a tokio socket.

use crate::ProxySettings;
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use lt_tracker::http::{self, HttpConfig};
use lt_tracker::{
    AnnounceRequest, AnnounceResponse, ScrapeEntry, UdpConfig, UdpEvent, UdpTracker, UdpUrl,
};

/// The HTTP client trackers are fetched with.
pub(crate) fn http_client(
    user_agent: &str,
    timeout: Duration,
    proxy: Option<&ProxySettings>,
) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .use_rustls_tls()
        .gzip(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .timeout(timeout)
        // One connection per request, as libtorrent does: announces are minutes apart, and
        // a pooled connection races the tracker's close (opentracker closes after every
        // reply, and a reused socket then fails with ECONNRESET).
        .pool_max_idle_per_host(0)
        .user_agent(user_agent);
    crate::proxy::route(builder, proxy.filter(|p| p.proxy_tracker_connections))?.build()
}

/// The error of a tracker request made without a client ([`crate::proxy::UNUSABLE`]).
pub(crate) fn unusable() -> lt_tracker::Error {
    transport(crate::proxy::UNUSABLE)
}

fn transport(e: impl std::fmt::Display) -> lt_tracker::Error {
    lt_tracker::Error::Transport(e.to_string())
}

async fn http_get(
    client: &reqwest::Client,
    url: &str,
    max_len: usize,
) -> Result<Vec<u8>, lt_tracker::Error> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(transport)?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max_len {
            return Err(lt_tracker::Error::ReplyTooLarge {
                len: body.len() + chunk.len(),
                max: max_len,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn udp_exchange<F>(
    url: &str,
    timeout: Duration,
    start: F,
) -> Result<UdpEvent, lt_tracker::Error>
where
    F: FnOnce(&mut UdpTracker) -> Result<(), lt_tracker::Error>,
{
    let parsed = UdpUrl::parse(url)?;
    let addr = tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
        .await
        .map_err(transport)?
        .next()
        .ok_or_else(|| transport("tracker host has no address"))?;
    let bind: std::net::SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.map_err(transport)?;
    socket.connect(addr).await.map_err(transport)?;
    let mut seed = [0u8; 32];
    crate::random_bytes(&mut seed);
    let mut tracker = UdpTracker::new(
        UdpConfig {
            rng_seed: Some(seed),
            ..UdpConfig::default()
        },
        &parsed.url_data,
    );
    start(&mut tracker)?;
    let run = async {
        let mut buf = vec![0u8; lt_tracker::limits::MAX_DATAGRAM_LEN];
        loop {
            while let Some(d) = tracker.poll_transmit() {
                socket.send(&d).await.map_err(transport)?;
            }
            if let Some(event) = tracker.poll_event() {
                return Ok(event);
            }
            let Some(deadline) = tracker.poll_timeout() else {
                return Err(lt_tracker::Error::Timeout);
            };
            tokio::select! {
                r = socket.recv(&mut buf) => {
                    if let Ok(n) = r {
                        tracker.handle_datagram(Instant::now(), buf.get(..n).unwrap_or_default());
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => tracker.handle_timeout(Instant::now()),
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(lt_tracker::Error::Timeout))
}

/// Why a UDP tracker is not asked while a proxy carries tracker connections.
const UDP_NOT_PROXIED: &str =
    "UDP trackers are not used while a proxy is set: UDP cannot go through it";

/// One announce to `url` (http, https or udp; udp only when `udp` is allowed).
pub(crate) async fn announce(
    client: &reqwest::Client,
    url: &str,
    req: &AnnounceRequest,
    timeout: Duration,
    udp: bool,
) -> Result<AnnounceResponse, lt_tracker::Error> {
    if url.starts_with("udp://") {
        if !udp {
            return Err(transport(UDP_NOT_PROXIED));
        }
        let now = Instant::now();
        match udp_exchange(url, timeout, |t| t.announce(now, req)).await? {
            UdpEvent::Announced(r) => Ok(r),
            UdpEvent::Failed(e) => Err(e),
            _ => Err(transport("unexpected UDP tracker reply")),
        }
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let config = HttpConfig::default();
        let body = http_get(client, &http::announce_url(url, req), config.max_reply_len).await?;
        http::parse_announce(&body, &config)
    } else {
        Err(lt_tracker::Error::InvalidUrl)
    }
}

/// One scrape of `hash` at the tracker of announce URL `url`.
pub(crate) async fn scrape(
    client: &reqwest::Client,
    url: &str,
    hash: Sha1Hash,
    timeout: Duration,
    udp: bool,
) -> Result<ScrapeEntry, lt_tracker::Error> {
    let entries = if url.starts_with("udp://") {
        if !udp {
            return Err(transport(UDP_NOT_PROXIED));
        }
        let now = Instant::now();
        match udp_exchange(url, timeout, |t| t.scrape(now, &[hash])).await? {
            UdpEvent::Scraped(r) => r,
            UdpEvent::Failed(e) => return Err(e),
            _ => return Err(transport("unexpected UDP tracker reply")),
        }
    } else {
        let config = HttpConfig::default();
        let scrape = http::scrape_url(url, &[hash]).ok_or(lt_tracker::Error::InvalidUrl)?;
        let body = http_get(client, &scrape, config.max_reply_len).await?;
        http::parse_scrape(&body, &config)?
    };
    entries
        .into_iter()
        .find(|e| e.info_hash == hash)
        .ok_or(lt_tracker::Error::BadField { key: "files" })
}
