//! SSDP (UPnP Device Architecture 1.1, section 1.3) discovery: the M-SEARCH request and the
//! parsing of unicast responses.
//!
//! A response whose LOCATION names a host other than the responder is refused
//! ([`Error::LocationMismatch`]): otherwise any LAN host could make us send HTTP requests to
//! an arbitrary address.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::error::Error;
use crate::http::HttpUrl;
use crate::limits::{MAX_SSDP_RESPONSE, MAX_XML_TEXT};

/// The SSDP multicast group and port.
pub const MULTICAST: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900));

/// The search target for Internet Gateway Devices (version 1 matches version 2 devices too).
pub const IGD_SEARCH_TARGET: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";

/// An M-SEARCH request for `search_target`, asking for answers within `mx` seconds.
#[must_use]
pub fn m_search(search_target: &str, mx: u8) -> Vec<u8> {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: {search_target}\r\n\
         MAN: \"ssdp:discover\"\r\nMX: {mx}\r\n\r\n"
    )
    .into_bytes()
}

/// A parsed SSDP search response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsdpResponse {
    /// The device description's URL (its host is the responder).
    pub location: HttpUrl,
    /// The search target answered (`ST`).
    pub search_target: String,
    /// The `SERVER` header, if any.
    pub server: Option<String>,
}

impl SsdpResponse {
    /// Whether this answers for an Internet Gateway Device or one of its WAN connection
    /// services.
    #[must_use]
    pub fn is_igd(&self) -> bool {
        let st = &self.search_target;
        st.contains(":device:InternetGatewayDevice:")
            || st.contains(":service:WANIPConnection:")
            || st.contains(":service:WANPPPConnection:")
    }
}

/// Parses a unicast search response that arrived from `from`.
///
/// # Errors
/// [`Error::PacketTooLong`] past [`MAX_SSDP_RESPONSE`], [`Error::SsdpMalformed`],
/// [`Error::SsdpNoLocation`], [`Error::BadUrl`], or [`Error::LocationMismatch`] when
/// LOCATION's host is not `from`'s address.
pub fn parse_response(from: SocketAddr, buf: &[u8]) -> Result<SsdpResponse, Error> {
    if buf.len() > MAX_SSDP_RESPONSE {
        return Err(Error::PacketTooLong {
            len: buf.len(),
            max: MAX_SSDP_RESPONSE,
        });
    }
    let text = std::str::from_utf8(buf).map_err(|_| Error::SsdpMalformed)?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split(' ');
    if !parts.next().unwrap_or_default().starts_with("HTTP/1.") || parts.next() != Some("200") {
        return Err(Error::SsdpMalformed);
    }
    let mut location = None;
    let mut search_target = None;
    let mut server = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Error::SsdpMalformed);
        };
        let value = value.trim();
        if value.len() > MAX_XML_TEXT {
            return Err(Error::SsdpMalformed);
        }
        if name.eq_ignore_ascii_case("location") {
            location = Some(value);
        } else if name.eq_ignore_ascii_case("st") {
            search_target = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("server") {
            server = Some(value.to_owned());
        }
    }
    let location = HttpUrl::parse(location.ok_or(Error::SsdpNoLocation)?)?;
    if location.host != from.ip() {
        return Err(Error::LocationMismatch {
            responder: from.ip(),
            location: location.host,
        });
    }
    Ok(SsdpResponse {
        location,
        search_target: search_target.unwrap_or_default(),
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
        ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
        USN: uuid:12345678-0000-0000-0000-000000000000::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
        EXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n\
        LOCATION: http://192.168.77.1:5000/rootDesc.xml\r\nOPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n\
        01-NLS: 1\r\nBOOTID.UPNP.ORG: 1\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n";

    #[test]
    fn parses_miniupnpd_style_reply() {
        let from = "192.168.77.1:1900".parse().unwrap();
        let r = parse_response(from, REPLY).unwrap();
        assert!(r.is_igd());
        assert_eq!(
            r.location.to_string(),
            "http://192.168.77.1:5000/rootDesc.xml"
        );
        assert_eq!(
            r.server.as_deref(),
            Some("Debian/12 UPnP/1.1 MiniUPnPd/2.3.1")
        );
    }

    #[test]
    fn refuses_location_elsewhere() {
        let from = "192.168.77.66:1900".parse().unwrap();
        assert_eq!(
            parse_response(from, REPLY),
            Err(Error::LocationMismatch {
                responder: "192.168.77.66".parse().unwrap(),
                location: "192.168.77.1".parse().unwrap()
            })
        );
    }

    #[test]
    fn refuses_malformed() {
        let from = "192.168.77.1:1900".parse().unwrap();
        assert_eq!(
            parse_response(from, b"HTTP/1.1 200 OK\r\nST: x\r\n\r\n"),
            Err(Error::SsdpNoLocation)
        );
        assert_eq!(
            parse_response(from, b"NOTIFY * HTTP/1.1\r\n\r\n"),
            Err(Error::SsdpMalformed)
        );
        assert_eq!(
            parse_response(from, b"HTTP/1.1 200 OK\r\nLOCATION: http://gw.lan/\r\n\r\n"),
            Err(Error::BadUrl)
        );
        assert!(matches!(
            parse_response(from, &[b'a'; 5000]),
            Err(Error::PacketTooLong { .. })
        ));
    }

    #[test]
    fn m_search_is_well_formed() {
        let req = String::from_utf8(m_search(IGD_SEARCH_TARGET, 2)).unwrap();
        assert!(req.starts_with("M-SEARCH * HTTP/1.1\r\n"));
        assert!(req.contains("MAN: \"ssdp:discover\"\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
    }

    #[quickcheck]
    fn never_panics(data: Vec<u8>) -> bool {
        let _ = parse_response("10.0.0.1:1900".parse().unwrap_or(MULTICAST), &data);
        true
    }
}
