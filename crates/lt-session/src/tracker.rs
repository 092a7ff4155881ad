//! Tracker I/O: HTTP(S) announces and scrapes with reqwest (rustls, gzip, redirects, a
//! size-limited body), and UDP (BEP 15) with lt-tracker's state machine on a tokio socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::ProxySettings;

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
        .pool_max_idle_per_host(0);
    // An empty user agent (anonymous mode) sends no User-Agent header at all.
    let builder = if user_agent.is_empty() {
        builder
    } else {
        builder.user_agent(user_agent)
    };
    crate::proxy::route(builder, proxy.filter(|p| p.proxy_tracker_connections))?.build()
}

/// The error of a tracker request made without a client ([`crate::proxy::UNUSABLE`]).
pub(crate) fn unusable() -> lt_tracker::Error {
    transport(crate::proxy::UNUSABLE)
}

/// A transport error names the proxy the request went through, if any.
pub(crate) fn through(e: lt_tracker::Error, proxy: Option<&str>) -> lt_tracker::Error {
    match (e, proxy) {
        (lt_tracker::Error::Transport(m), Some(p)) => {
            lt_tracker::Error::Transport(format!("through proxy {p}: {m}"))
        }
        (e, _) => e,
    }
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
        .map_err(|e| transport(crate::error_chain(&e)))?;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport(crate::error_chain(&e)))?
    {
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

/// How UDP tracker datagrams travel.
#[derive(Clone, Debug)]
pub(crate) enum UdpRoute {
    /// Straight to the tracker.
    Direct,
    /// Through the SOCKS5 proxy's UDP relay (one association per exchange).
    Relay(ProxySettings),
    /// Not at all: the proxy cannot carry UDP.
    Refused,
}

/// The tracker's address, resolved here.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, lt_tracker::Error> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(transport)?
        .next()
        .ok_or_else(|| transport("tracker host has no address"))
}

/// A UDP socket connected to the tracker, or to the proxy's relay with the header every
/// datagram to the tracker starts with.
async fn udp_socket(
    host: &str,
    port: u16,
    route: &UdpRoute,
    timeout: Duration,
) -> Result<(tokio::net::UdpSocket, Option<(Vec<u8>, TcpStream)>), lt_tracker::Error> {
    let unspecified = |v4: bool| -> SocketAddr {
        if v4 {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        }
    };
    match route {
        UdpRoute::Refused => Err(transport(UDP_NOT_PROXIED)),
        UdpRoute::Direct => {
            let addr = resolve(host, port).await?;
            let socket = tokio::net::UdpSocket::bind(unspecified(addr.is_ipv4()))
                .await
                .map_err(transport)?;
            socket.connect(addr).await.map_err(transport)?;
            Ok((socket, None))
        }
        UdpRoute::Relay(proxy) => {
            let socket = tokio::net::UdpSocket::bind(unspecified(true))
                .await
                .map_err(transport)?;
            let local = socket.local_addr().map_err(transport)?;
            let assoc = crate::proxy::associate(proxy, local, timeout)
                .await
                .map_err(transport)?;
            socket.connect(assoc.relay).await.map_err(transport)?;
            let mut header = Vec::new();
            let named = proxy.proxy_hostnames
                && host.parse::<std::net::IpAddr>().is_err()
                && lt_utp::relay::encode_name_header(host, port, &mut header);
            if !named {
                lt_utp::relay::encode_header(resolve(host, port).await?, &mut header);
            }
            Ok((socket, Some((header, assoc.control))))
        }
    }
}

async fn udp_exchange<F>(
    url: &str,
    timeout: Duration,
    route: &UdpRoute,
    start: F,
) -> Result<UdpEvent, lt_tracker::Error>
where
    F: FnOnce(&mut UdpTracker) -> Result<(), lt_tracker::Error>,
{
    let parsed = UdpUrl::parse(url)?;
    let (socket, relay) = udp_socket(&parsed.host, parsed.port, route, timeout).await?;
    // The association lasts while its TCP connection is open: to the end of the exchange.
    let (header, _control) = match relay {
        Some((h, c)) => (Some(h), Some(c)),
        None => (None, None),
    };
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
        let mut buf = vec![0u8; lt_tracker::limits::MAX_DATAGRAM_LEN + 300];
        let mut framed = Vec::new();
        loop {
            while let Some(d) = tracker.poll_transmit() {
                let out = match &header {
                    Some(h) => {
                        framed.clear();
                        framed.extend_from_slice(h);
                        framed.extend_from_slice(&d);
                        &framed[..]
                    }
                    None => &d[..],
                };
                socket.send(out).await.map_err(transport)?;
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
                        let d = buf.get(..n).unwrap_or_default();
                        let d = if header.is_some() {
                            lt_utp::relay::decode(d).map_or(&[][..], |(_, payload)| payload)
                        } else {
                            d
                        };
                        if !d.is_empty() {
                            tracker.handle_datagram(Instant::now(), d);
                        }
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

/// Why no tracker is asked in anonymous mode without a proxy for trackers.
pub(crate) const ANONYMOUS_NO_PROXY: &str =
    "anonymous mode: trackers are used only through a proxy, and none is set for them";

/// The error of an announce refused by anonymous mode.
pub(crate) fn anonymous_refused() -> lt_tracker::Error {
    transport(ANONYMOUS_NO_PROXY)
}

/// Why a UDP tracker is not asked while a proxy carries tracker connections.
const UDP_NOT_PROXIED: &str =
    "UDP trackers are not used while this proxy is set: only SOCKS5 carries UDP";

/// One announce to `url` (http, https or udp, the last as `udp` says).
pub(crate) async fn announce(
    client: &reqwest::Client,
    url: &str,
    req: &AnnounceRequest,
    timeout: Duration,
    udp: &UdpRoute,
) -> Result<AnnounceResponse, lt_tracker::Error> {
    if url.starts_with("udp://") {
        let now = Instant::now();
        match udp_exchange(url, timeout, udp, |t| t.announce(now, req)).await? {
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
    udp: &UdpRoute,
) -> Result<ScrapeEntry, lt_tracker::Error> {
    let entries = if url.starts_with("udp://") {
        let now = Instant::now();
        match udp_exchange(url, timeout, udp, |t| t.scrape(now, &[hash])).await? {
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
