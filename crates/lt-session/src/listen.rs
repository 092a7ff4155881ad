//! Listen sockets: TCP listeners on every interface (one port for all, with retries) and
//! the UDP sockets uTP and the DHT share.

use std::net::SocketAddr;

use crate::Error;
use crate::SessionSettings;

pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds every listen interface on one port, trying the following ports when it is taken.
pub(crate) fn listen_all(settings: &SessionSettings) -> Result<Vec<std::net::TcpListener>, Error> {
    listen_on(&settings.listen_interfaces, settings.listen_port_retries)
}

/// Binds every interface on one port, trying up to `retries` following ports when it is
/// taken (only the first interface must bind).
pub(crate) fn listen_on(
    interfaces: &[SocketAddr],
    retries: u16,
) -> Result<Vec<std::net::TcpListener>, Error> {
    let Some(first) = interfaces.first().copied() else {
        return Ok(Vec::new());
    };
    let mut last_err = None;
    for k in 0..=retries {
        let port = if first.port() == 0 {
            0
        } else {
            first.port().saturating_add(k)
        };
        let mut out = Vec::new();
        let mut chosen = port;
        let mut failed = false;
        for (i, a) in interfaces.iter().enumerate() {
            let addr = SocketAddr::new(a.ip(), chosen);
            match bind(addr) {
                Ok(l) => {
                    if i == 0 {
                        chosen = l.local_addr().map_or(chosen, |a| a.port());
                    }
                    out.push(l);
                }
                Err(e) if i == 0 => {
                    last_err = Some((addr, e));
                    failed = true;
                    break;
                }
                // A secondary interface (e.g. no IPv6 here) is skipped.
                Err(_) => {}
            }
        }
        if !failed {
            return Ok(out);
        }
        if first.port() == 0 {
            break;
        }
    }
    let (addr, source) = last_err.unwrap_or_else(|| (first, std::io::Error::other("no interface")));
    Err(Error::Listen { addr, source })
}
