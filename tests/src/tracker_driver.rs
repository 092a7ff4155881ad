//! A small I/O shell around `lt-tracker`, for the interop tests and the tracker bench until
//! lt-session exists: an HTTP(S) client (reqwest with rustls, gzip and redirects, the body
//! read with a size limit), a tokio loop for [`UdpTracker`], and a threaded socket server
//! around the sans-IO [`TrackerServer`] (HTTP and UDP on the same port number).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lt_tracker::http::{self, HttpConfig};
use lt_tracker::server::TrackerServer;
use lt_tracker::{AnnounceRequest, AnnounceResponse, ScrapeEntry, UdpEvent, UdpTracker};

/// Why a driven tracker exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The HTTP request failed (connection, TLS, status, redirect loop, timeout).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The tracker's reply was refused by lt-tracker.
    #[error("tracker: {0}")]
    Tracker(#[from] lt_tracker::Error),
    /// A socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A scrape URL could not be derived (BEP 48).
    #[error("tracker does not support scrape")]
    NoScrape,
}

/// The HTTP client trackers are fetched with: rustls, gzip, at most 5 redirects, and a
/// 10 s overall timeout, so a tracker that never answers ends in an error.
///
/// # Panics
/// If reqwest cannot build a client (no TLS backend), which is a build problem.
#[allow(
    clippy::expect_used,
    reason = "a client without TLS is a build problem"
)]
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .gzip(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .timeout(timeout)
        // One connection per request, as libtorrent does: announces are minutes apart, and
        // a pooled connection races the tracker's close (opentracker closes after every
        // reply, and a reused socket then fails with ECONNRESET).
        .pool_max_idle_per_host(0)
        .user_agent("lt/0.1")
        .build()
        .expect("reqwest client with rustls")
}

/// Like [`http_client`], also trusting the PEM certificate `root` (for a test HTTPS tracker
/// with its own CA).
pub fn http_client_trusting(timeout: Duration, root: &[u8]) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(root)?)
        .gzip(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .user_agent("lt/0.1")
        .build()
}

/// GETs `url` and returns the body, failing with [`lt_tracker::Error::ReplyTooLarge`] as
/// soon as it grows past `max_len` (whatever the `Content-Length` says).
pub async fn http_get(
    client: &reqwest::Client,
    url: &str,
    max_len: usize,
) -> Result<Vec<u8>, DriverError> {
    let mut resp = client.get(url).send().await?.error_for_status()?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max_len {
            return Err(lt_tracker::Error::ReplyTooLarge {
                len: body.len() + chunk.len(),
                max: max_len,
            }
            .into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One HTTP announce.
pub async fn http_announce(
    client: &reqwest::Client,
    announce: &str,
    req: &AnnounceRequest,
) -> Result<AnnounceResponse, DriverError> {
    let config = HttpConfig::default();
    let body = http_get(
        client,
        &http::announce_url(announce, req),
        config.max_reply_len,
    )
    .await?;
    Ok(http::parse_announce(&body, &config)?)
}

/// One HTTP scrape (BEP 48 URL derived from the announce URL).
pub async fn http_scrape(
    client: &reqwest::Client,
    announce: &str,
    hashes: &[lt_core::Sha1Hash],
) -> Result<Vec<ScrapeEntry>, DriverError> {
    let config = HttpConfig::default();
    let url = http::scrape_url(announce, hashes).ok_or(DriverError::NoScrape)?;
    let body = http_get(client, &url, config.max_reply_len).await?;
    Ok(http::parse_scrape(&body, &config)?)
}

/// Drives `tracker` over `socket` (connected to the tracker) until it reports an event:
/// send every transmit, then take events, then wait for a datagram or the deadline.
pub async fn udp_run(
    socket: &tokio::net::UdpSocket,
    tracker: &mut UdpTracker,
) -> Result<UdpEvent, DriverError> {
    let mut buf = vec![0u8; lt_tracker::limits::MAX_DATAGRAM_LEN];
    loop {
        while let Some(datagram) = tracker.poll_transmit() {
            socket.send(&datagram).await?;
        }
        if let Some(event) = tracker.poll_event() {
            return Ok(event);
        }
        let Some(deadline) = tracker.poll_timeout() else {
            return Err(DriverError::Io(std::io::Error::other(
                "UDP tracker idle without an event",
            )));
        };
        tokio::select! {
            r = socket.recv(&mut buf) => {
                // An ICMP port-unreachable shows up as an error here; treat it like silence
                // and let the retry schedule run.
                if let Ok(n) = r {
                    tracker.handle_datagram(Instant::now(), buf.get(..n).unwrap_or_default());
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => tracker.handle_timeout(Instant::now()),
        }
    }
}

/// A [`TrackerServer`] on real sockets: UDP and HTTP (TCP) on the same port, each served
/// by a thread; dropping it stops and joins both.
#[derive(Debug)]
pub struct TrackerThreads {
    /// The port, for `http://IP:PORT/announce` and `udp://IP:PORT`.
    pub port: u16,
    /// The server, shared by both threads.
    pub server: Arc<Mutex<TrackerServer>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TrackerThreads {
    /// Binds `ip` on a free port (UDP and TCP) and starts serving.
    pub fn start(server: TrackerServer, ip: IpAddr) -> std::io::Result<Self> {
        Self::bind(server, SocketAddr::new(ip, 0))
    }

    /// A server on 127.0.0.1 (a free port) that asks for announces every 2 s (at least
    /// 1 s apart), its peer lists shuffled from `rng_seed`: what a loopback test waits on.
    ///
    /// # Errors
    /// As [`TrackerThreads::bind`].
    pub fn loopback(rng_seed: [u8; 32]) -> std::io::Result<Self> {
        use lt_tracker::server::ServerConfig;
        let server = TrackerServer::new(ServerConfig {
            announce_interval: Duration::from_secs(2),
            min_interval: Duration::from_secs(1),
            rng_seed: Some(rng_seed),
            ..ServerConfig::default()
        });
        Self::start(server, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// Binds UDP and TCP on `addr` (port 0: a free port, the same for both) and starts
    /// serving.
    pub fn bind(server: TrackerServer, addr: SocketAddr) -> std::io::Result<Self> {
        let (udp, tcp) = if addr.port() == 0 {
            bind_pair(addr.ip())?
        } else {
            (UdpSocket::bind(addr)?, TcpListener::bind(addr)?)
        };
        let port = udp.local_addr()?.port();
        let server = Arc::new(Mutex::new(server));
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(50)))?;
        tcp.set_nonblocking(true)?;
        let (s1, st1) = (Arc::clone(&server), Arc::clone(&stop));
        let (s2, st2) = (Arc::clone(&server), Arc::clone(&stop));
        let threads = vec![
            std::thread::spawn(move || udp_loop(&udp, &s1, &st1)),
            std::thread::spawn(move || http_loop(&tcp, &s2, &st2)),
        ];
        Ok(Self {
            port,
            server,
            stop,
            threads,
        })
    }
}

impl Drop for TrackerThreads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Binds a UDP socket on a free port of `ip` and a TCP listener on the same port number.
pub fn bind_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

fn udp_loop(socket: &UdpSocket, server: &Mutex<TrackerServer>, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let reply = server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or_default());
        if let Some(reply) = reply {
            if std::env::var_os("LT_TRACKER_DEBUG").is_some() {
                println!("udp in {:02x?} out {:02x?}", buf.get(..n.min(100)), reply);
            }
            let _ = socket.send_to(&reply, from);
        }
    }
}

fn http_loop(listener: &TcpListener, server: &Mutex<TrackerServer>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, from)) => {
                let _ = serve_http(stream, from.ip(), server);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Minimal HTTP/1.x for a tracker: one GET per connection, request head capped at 8 KiB,
/// `Connection: close`.
fn serve_http(
    mut stream: TcpStream,
    from: IpAddr,
    server: &Mutex<TrackerServer>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    let reply = server
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .handle_http(Instant::now(), from, target);
    let reason = if reply.status == 200 {
        "OK"
    } else {
        "Not Found"
    };
    let header = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(&reply.body)?;
    stream.flush()
}
