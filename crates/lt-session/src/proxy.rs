//! Outgoing connections through a proxy (the manual's `proxy_settings`): SOCKS4 (and 4a),
//! SOCKS5 without and with username/password (RFC 1928, RFC 1929), HTTP `CONNECT` without
//! and with basic authentication.
//!
//! Peer connections are tunnelled here; trackers and web seeds go through reqwest's own
//! proxy support with the same settings ([`ProxySettings::reqwest`]). The handshakes are
//! written by hand rather than taken from tokio-socks or hyper-util's connectors because
//! those do `CONNECT` only, while SOCKS5's `UDP ASSOCIATE` (uTP, the DHT and UDP trackers
//! through the proxy, with lt-utp's [`relay`](lt_utp::relay) framing) needs the same
//! negotiation, and because every answer of the proxy is input to bound: each read here
//! has a fixed or a capped length, and the whole exchange runs under a timeout.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which protocol the proxy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// SOCKS4; names are sent as SOCKS4a. No authentication, IPv4 only.
    Socks4,
    /// SOCKS5, with username/password when [`ProxySettings::auth`] is set.
    Socks5,
    /// An HTTP proxy: `CONNECT` for peers, plain proxy requests for HTTP trackers and web
    /// seeds; basic authentication when [`ProxySettings::auth`] is set.
    Http,
}

impl ProxyKind {
    pub(crate) const fn scheme(self) -> &'static str {
        match self {
            Self::Socks4 => "socks4",
            Self::Socks5 => "socks5",
            Self::Http => "http",
        }
    }
}

/// A username and a password for the proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for ProxyAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The proxy every outgoing connection of the session goes through (the manual's
/// `proxy_settings`, with libtorrent 2.x's meaning: with a proxy set, nothing that could go
/// through it goes around it, and what cannot go through it is not done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// The protocol.
    pub kind: ProxyKind,
    /// The proxy's host name or address.
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// Credentials (`socks5_pw`, `http_pw` in the manual). SOCKS4 has none.
    pub auth: Option<ProxyAuth>,
    /// Tracker and web seed host names are resolved by the proxy (no local DNS lookup).
    pub proxy_hostnames: bool,
    /// Peer connections go through the proxy.
    pub proxy_peer_connections: bool,
    /// Tracker announces and scrapes go through the proxy.
    pub proxy_tracker_connections: bool,
}

impl ProxySettings {
    /// A proxy of `kind` at `host:port`, without credentials, used for everything.
    #[must_use]
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
            auth: None,
            proxy_hostnames: true,
            proxy_peer_connections: true,
            proxy_tracker_connections: true,
        }
    }

    /// The same with a username and a password.
    #[must_use]
    pub fn with_auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(ProxyAuth {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// `scheme://host:port`, naming the proxy in errors.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{}://{}", self.kind.scheme(), self.endpoint())
    }

    /// `host:port`, with brackets around an IPv6 address.
    #[must_use]
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The proxy for reqwest (trackers, web seeds): `socks5h`/`socks4a` when host names are
    /// resolved by the proxy.
    pub(crate) fn reqwest(&self) -> Result<reqwest::Proxy, reqwest::Error> {
        let scheme = match (self.kind, self.proxy_hostnames) {
            (ProxyKind::Socks4, false) => "socks4",
            (ProxyKind::Socks4, true) => "socks4a",
            (ProxyKind::Socks5, false) => "socks5",
            (ProxyKind::Socks5, true) => "socks5h",
            (ProxyKind::Http, _) => "http",
        };
        let userinfo = match (&self.auth, self.kind) {
            (Some(a), ProxyKind::Socks5) => {
                format!("{}:{}@", percent(&a.username), percent(&a.password))
            }
            _ => String::new(),
        };
        let proxy = reqwest::Proxy::all(format!("{scheme}://{userinfo}{}", self.endpoint()))?;
        Ok(match (&self.auth, self.kind) {
            (Some(a), ProxyKind::Http) => proxy.basic_auth(&a.username, &a.password),
            _ => proxy,
        })
    }
}

/// Why nothing is fetched when the proxy settings cannot be made into an HTTP client.
pub(crate) const UNUSABLE: &str =
    "the proxy settings cannot be used for HTTP; nothing is fetched around the proxy";

impl ProxySettings {
    /// The settings as a bencoded dictionary, for the session state.
    pub(crate) fn to_bencode(&self) -> lt_bencode::Value {
        use lt_bencode::Value;
        let mut d = std::collections::BTreeMap::new();
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let flag = |b: bool| Value::Int(i64::from(b));
        d.insert(b"type".to_vec(), text(self.kind.scheme()));
        d.insert(b"hostname".to_vec(), text(&self.host));
        d.insert(b"port".to_vec(), Value::Int(i64::from(self.port)));
        if let Some(a) = &self.auth {
            d.insert(b"username".to_vec(), text(&a.username));
            d.insert(b"password".to_vec(), text(&a.password));
        }
        d.insert(b"proxy_hostnames".to_vec(), flag(self.proxy_hostnames));
        d.insert(
            b"proxy_peer_connections".to_vec(),
            flag(self.proxy_peer_connections),
        );
        d.insert(
            b"proxy_tracker_connections".to_vec(),
            flag(self.proxy_tracker_connections),
        );
        Value::Dict(d)
    }

    /// The settings from the dictionary [`ProxySettings::to_bencode`] writes.
    pub(crate) fn from_bencode(d: &lt_bencode::Dict<'_>) -> Result<Self, String> {
        let kind = match d.get_str("type") {
            Some("socks4") => ProxyKind::Socks4,
            Some("socks5") => ProxyKind::Socks5,
            Some("http") => ProxyKind::Http,
            other => return Err(format!("unknown proxy type {other:?}")),
        };
        let host = d.get_str("hostname").ok_or("proxy without a hostname")?;
        let port = d
            .get_int("port")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .ok_or("proxy without a valid port")?;
        let mut p = Self::new(kind, host, port);
        if let (Some(u), Some(pw)) = (d.get_str("username"), d.get_str("password")) {
            p = p.with_auth(u, pw);
        }
        let flag = |k: &str, default: bool| d.get_int(k).map_or(default, |v| v != 0);
        p.proxy_hostnames = flag("proxy_hostnames", true);
        p.proxy_peer_connections = flag("proxy_peer_connections", true);
        p.proxy_tracker_connections = flag("proxy_tracker_connections", true);
        Ok(p)
    }
}

/// Sends a reqwest client's requests through `proxy` (and only through it), or directly
/// when there is none: environment variables such as `HTTP_PROXY` are not read, as
/// libtorrent does not read them.
pub(crate) fn route(
    builder: reqwest::ClientBuilder,
    proxy: Option<&ProxySettings>,
) -> reqwest::Result<reqwest::ClientBuilder> {
    let builder = builder.no_proxy();
    Ok(match proxy {
        Some(p) => builder.proxy(p.reqwest()?),
        None => builder,
    })
}

/// Percent-encodes everything but unreserved characters (for credentials in a URL).
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unpercent(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

impl FromStr for ProxySettings {
    type Err = String;

    /// `socks5://user:password@host:port`, `socks4://host:port`, `http://host:port` (the
    /// credentials percent-encoded; `socks5h`/`socks4a` are accepted as their plain names,
    /// host names always going to the proxy).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?}: expected scheme://host:port"))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "socks4" | "socks4a" => ProxyKind::Socks4,
            "socks5" | "socks5h" => ProxyKind::Socks5,
            "http" => ProxyKind::Http,
            other => {
                return Err(format!(
                    "unknown proxy type {other:?} (socks4, socks5, http)"
                ));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: the proxy's port is missing"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{s:?}: the proxy's host is missing"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: bad port {port:?}"))?;
        let mut settings = Self::new(kind, host, port);
        if let Some(u) = userinfo {
            if kind == ProxyKind::Socks4 {
                return Err("SOCKS4 has no password authentication".into());
            }
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            settings = settings.with_auth(unpercent(user)?, unpercent(pass)?);
        }
        Ok(settings)
    }
}

/// What went wrong talking to the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyErrorKind {
    /// The proxy could not be reached.
    #[error("cannot reach the proxy: {0}")]
    Unreachable(String),
    /// The proxy closed the connection in the middle of the handshake.
    #[error("the proxy closed the connection during the handshake")]
    Closed,
    /// A socket error during the handshake.
    #[error("I/O error during the proxy handshake: {0}")]
    Io(String),
    /// The proxy's answer is not the protocol's.
    #[error("the proxy's answer is malformed: {0}")]
    Malformed(&'static str),
    /// The proxy wants credentials and none are set, or accepts none of the methods offered.
    #[error("the proxy requires authentication")]
    AuthRequired,
    /// The proxy refused the username and password.
    #[error("the proxy refused the username and password")]
    AuthFailed,
    /// The proxy refused the request (SOCKS reply code, HTTP status).
    #[error("the proxy refused: {0}")]
    Refused(String),
    /// The request cannot be expressed in the proxy's protocol (IPv6 through SOCKS4,
    /// credentials over 255 bytes).
    #[error("not possible through this proxy: {0}")]
    Unsupported(&'static str),
    /// The handshake did not finish in time.
    #[error("the proxy handshake timed out")]
    Timeout,
}

/// A proxy failure: which proxy, what was asked of it, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("proxy {proxy}: {operation}: {kind}")]
pub struct ProxyError {
    /// `scheme://host:port` of the proxy.
    pub proxy: String,
    /// What was asked, e.g. `connect to 10.0.0.2:6881`.
    pub operation: String,
    /// What went wrong.
    pub kind: ProxyErrorKind,
}

impl ProxyError {
    /// The same error as an I/O error for the engine: the kind tells refused from timed out,
    /// the text names the proxy and the operation.
    pub(crate) fn into_io(self) -> lt_engine::IoError {
        use std::io::ErrorKind as K;
        let kind = match self.kind {
            ProxyErrorKind::Unreachable(_) | ProxyErrorKind::Refused(_) => K::ConnectionRefused,
            ProxyErrorKind::Closed => K::UnexpectedEof,
            ProxyErrorKind::Timeout => K::TimedOut,
            ProxyErrorKind::AuthRequired | ProxyErrorKind::AuthFailed => K::PermissionDenied,
            ProxyErrorKind::Unsupported(_) => K::Unsupported,
            ProxyErrorKind::Io(_) | ProxyErrorKind::Malformed(_) => K::InvalidData,
        };
        lt_engine::IoError::new(kind, self.to_string())
    }
}

/// What the handshake asks the proxy for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// A TCP connection to the address.
    Connect(SocketAddr),
    /// A UDP relay (SOCKS5 only) for datagrams from the address (its IP unspecified when
    /// not known).
    UdpAssociate(SocketAddr),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(a) => write!(f, "connect to {a}"),
            Self::UdpAssociate(_) => f.write_str("UDP associate"),
        }
    }
}

/// A SOCKS5 UDP association: where to send datagrams, and the TCP connection that keeps
/// it (the proxy ends the association when that connection closes).
#[derive(Debug)]
pub(crate) struct UdpAssociation {
    /// The relay's address.
    pub(crate) relay: SocketAddr,
    /// The connection to keep open while the relay is used.
    pub(crate) control: TcpStream,
}

/// Asks a SOCKS5 proxy for a UDP relay for datagrams from `local` (RFC 1928 `UDP
/// ASSOCIATE`). A relay the proxy names as an unspecified address is at the proxy's own.
pub(crate) async fn associate(
    proxy: &ProxySettings,
    local: SocketAddr,
    timeout: Duration,
) -> Result<UdpAssociation, ProxyError> {
    let (control, bound) = open(proxy, Command::UdpAssociate(local), timeout).await?;
    let relay = if bound.ip().is_unspecified() {
        let ip = control.peer_addr().map_or_else(|_| bound.ip(), |a| a.ip());
        SocketAddr::new(ip, bound.port())
    } else {
        bound
    };
    Ok(UdpAssociation { relay, control })
}

/// Opens a TCP connection to the proxy and runs the handshake for `command`, all within
/// `timeout`. Returns the stream, ready for the peer protocol (or, for `UDP ASSOCIATE`, to be
/// kept open while the relay is used) and the address the proxy bound for us.
pub(crate) async fn open(
    proxy: &ProxySettings,
    command: Command,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ProxyError> {
    let fail = |kind| ProxyError {
        proxy: proxy.label(),
        operation: command.to_string(),
        kind,
    };
    let run = async {
        let mut stream = TcpStream::connect((proxy.host.as_str(), proxy.port))
            .await
            .map_err(|e| ProxyErrorKind::Unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let bound = handshake(&mut stream, proxy, command).await?;
        Ok((stream, bound))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r.map_err(fail),
        Err(_) => Err(fail(ProxyErrorKind::Timeout)),
    }
}

/// The longest HTTP answer header read from a proxy.
const MAX_HTTP_HEADER: usize = 8 * 1024;

/// Runs the proxy protocol's handshake on a connected stream. Reads no byte past the
/// proxy's answer, so whatever follows belongs to the tunnelled protocol.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    proxy: &ProxySettings,
    command: Command,
) -> Result<SocketAddr, ProxyErrorKind> {
    match proxy.kind {
        ProxyKind::Socks4 => socks4(s, command).await,
        ProxyKind::Socks5 => socks5(s, proxy.auth.as_ref(), command).await,
        ProxyKind::Http => http_connect(s, proxy.auth.as_ref(), command).await,
    }
}

fn io(e: std::io::Error) -> ProxyErrorKind {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ProxyErrorKind::Closed
    } else {
        ProxyErrorKind::Io(e.to_string())
    }
}

async fn read_exact<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Result<(), ProxyErrorKind> {
    s.read_exact(buf).await.map(|_| ()).map_err(io)
}

async fn socks4<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    command: Command,
) -> Result<SocketAddr, ProxyErrorKind> {
    let Command::Connect(addr) = command else {
        return Err(ProxyErrorKind::Unsupported("UDP through SOCKS4"));
    };
    let SocketAddr::V4(v4) = addr else {
        return Err(ProxyErrorKind::Unsupported("IPv6 through SOCKS4"));
    };
    let mut req = vec![4, 1];
    req.extend_from_slice(&v4.port().to_be_bytes());
    req.extend_from_slice(&v4.ip().octets());
    req.push(0); // empty user id
    s.write_all(&req).await.map_err(io)?;
    let mut reply = [0u8; 8];
    read_exact(s, &mut reply).await?;
    if reply[0] != 0 {
        return Err(ProxyErrorKind::Malformed("SOCKS4 reply version is not 0"));
    }
    match reply[1] {
        90 => Ok(addr),
        91 => Err(ProxyErrorKind::Refused(
            "request rejected or failed (91)".into(),
        )),
        92 | 93 => Err(ProxyErrorKind::Refused(format!(
            "identd check failed ({})",
            reply[1]
        ))),
        _ => Err(ProxyErrorKind::Malformed("unknown SOCKS4 reply code")),
    }
}

fn socks5_reason(code: u8) -> String {
    let text = match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    };
    format!("{text} ({code})")
}

async fn socks5<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    auth: Option<&ProxyAuth>,
    command: Command,
) -> Result<SocketAddr, ProxyErrorKind> {
    // Greeting: the methods we can do.
    let greeting: &[u8] = if auth.is_some() {
        &[5, 2, 0, 2]
    } else {
        &[5, 1, 0]
    };
    s.write_all(greeting).await.map_err(io)?;
    let mut choice = [0u8; 2];
    read_exact(s, &mut choice).await?;
    if choice[0] != 5 {
        return Err(ProxyErrorKind::Malformed("SOCKS5 version is not 5"));
    }
    match (choice[1], auth) {
        (0, _) => {}
        (2, Some(a)) => {
            let (user, pass) = (a.username.as_bytes(), a.password.as_bytes());
            let (Ok(ulen), Ok(plen)) = (u8::try_from(user.len()), u8::try_from(pass.len())) else {
                return Err(ProxyErrorKind::Unsupported(
                    "a username or password longer than 255 bytes",
                ));
            };
            let mut req = Vec::with_capacity(3 + user.len() + pass.len());
            req.extend_from_slice(&[1, ulen]);
            req.extend_from_slice(user);
            req.push(plen);
            req.extend_from_slice(pass);
            s.write_all(&req).await.map_err(io)?;
            let mut status = [0u8; 2];
            read_exact(s, &mut status).await?;
            if status[1] != 0 {
                return Err(ProxyErrorKind::AuthFailed);
            }
        }
        (0xff, _) | (2, None) => return Err(ProxyErrorKind::AuthRequired),
        _ => return Err(ProxyErrorKind::Malformed("SOCKS5 method we did not offer")),
    }
    let (cmd, addr) = match command {
        Command::Connect(a) => (1, a),
        Command::UdpAssociate(a) => (3, a),
    };
    let mut req = vec![5, cmd, 0];
    match addr {
        SocketAddr::V4(v4) => {
            req.push(1);
            req.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            req.push(4);
            req.extend_from_slice(&v6.ip().octets());
        }
    }
    req.extend_from_slice(&addr.port().to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    let mut head = [0u8; 4];
    read_exact(s, &mut head).await?;
    if head[0] != 5 {
        return Err(ProxyErrorKind::Malformed("SOCKS5 reply version is not 5"));
    }
    if head[1] != 0 {
        return Err(ProxyErrorKind::Refused(socks5_reason(head[1])));
    }
    let bound = match head[3] {
        1 => {
            let mut b = [0u8; 6];
            read_exact(s, &mut b).await?;
            SocketAddr::from(([b[0], b[1], b[2], b[3]], u16::from_be_bytes([b[4], b[5]])))
        }
        4 => {
            let mut b = [0u8; 18];
            read_exact(s, &mut b).await?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[..16]);
            SocketAddr::from((ip, u16::from_be_bytes([b[16], b[17]])))
        }
        3 => {
            // A name: read it (at most 255 bytes) and the port, and report the request's
            // own address family's unspecified address; the name is not resolved.
            let mut len = [0u8; 1];
            read_exact(s, &mut len).await?;
            let mut rest = vec![0u8; usize::from(len[0]) + 2];
            read_exact(s, &mut rest).await?;
            let port = u16::from_be_bytes([rest[rest.len() - 2], rest[rest.len() - 1]]);
            SocketAddr::new(addr.ip(), port)
        }
        _ => return Err(ProxyErrorKind::Malformed("SOCKS5 address type")),
    };
    Ok(bound)
}

async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    auth: Option<&ProxyAuth>,
    command: Command,
) -> Result<SocketAddr, ProxyErrorKind> {
    use base64::Engine as _;
    let Command::Connect(addr) = command else {
        return Err(ProxyErrorKind::Unsupported("UDP through an HTTP proxy"));
    };
    let mut req = format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(a) = auth {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", a.username, a.password));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.map_err(io)?;
    // The answer's header, one byte at a time so that nothing after it is consumed.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HTTP_HEADER {
            return Err(ProxyErrorKind::Malformed("HTTP answer header over 8 KiB"));
        }
        let mut b = [0u8; 1];
        read_exact(s, &mut b).await?;
        head.push(b[0]);
        // Something that is not HTTP is refused at its first line, not when it closes.
        if head.len() == 8 && !head.starts_with(b"HTTP/1.") {
            return Err(ProxyErrorKind::Malformed("not an HTTP/1 answer"));
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| ProxyErrorKind::Malformed("HTTP status"))?;
    let mut parts = line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ProxyErrorKind::Malformed("HTTP status line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ProxyErrorKind::Malformed("not an HTTP/1 answer"));
    }
    let code: u16 = code
        .parse()
        .map_err(|_| ProxyErrorKind::Malformed("HTTP status code"))?;
    match code {
        200..=299 => Ok(addr),
        // 407 is the standard's answer; tinyproxy answers 401.
        401 | 407 if auth.is_some() => Err(ProxyErrorKind::AuthFailed),
        401 | 407 => Err(ProxyErrorKind::AuthRequired),
        _ => Err(ProxyErrorKind::Refused(line.to_owned())),
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
