//! UPnP device descriptions: finding the Internet Gateway Device's WAN connection service.
//!
//! Parsing uses roxmltree with DTDs refused (no entity declarations, so no "billion laughs"),
//! a node cap ([`MAX_XML_NODES`]) and a size cap ([`MAX_HTTP_BODY`]) checked before parsing.

use roxmltree::{Document, Node, ParsingOptions};

use crate::error::Error;
use crate::http::HttpUrl;
use crate::limits::{MAX_HTTP_BODY, MAX_XML_NODES, MAX_XML_TEXT};

/// The kinds of WAN connection service we can drive, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKind {
    /// `urn:schemas-upnp-org:service:WANIPConnection:2`.
    WanIp2,
    /// `urn:schemas-upnp-org:service:WANIPConnection:1`.
    WanIp1,
    /// `urn:schemas-upnp-org:service:WANPPPConnection:1` (or later).
    WanPpp,
}

impl ServiceKind {
    fn from_type(service_type: &str) -> Option<Self> {
        let rest = service_type.strip_prefix("urn:schemas-upnp-org:service:")?;
        if let Some(v) = rest.strip_prefix("WANIPConnection:") {
            return match v {
                "1" => Some(Self::WanIp1),
                "2" => Some(Self::WanIp2),
                _ => None,
            };
        }
        rest.strip_prefix("WANPPPConnection:")
            .filter(|v| v.parse::<u8>().is_ok())
            .map(|_| Self::WanPpp)
    }
}

/// A WAN connection service of a device description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Which one.
    pub kind: ServiceKind,
    /// Its `serviceType` (used as the SOAP namespace and in SOAPAction).
    pub service_type: String,
    /// Its `controlURL`, resolved and checked to be on the description's host.
    pub control_url: HttpUrl,
}

/// What we take from a gateway's device description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The root device's `friendlyName`.
    pub friendly_name: Option<String>,
    /// The root device's `modelName` (libtorrent's "router model").
    pub model_name: Option<String>,
    /// The best WAN connection service.
    pub service: Service,
}

/// Parses the description fetched from `location`.
///
/// Control URLs are resolved against `URLBase` when present, else against `location`, and
/// must stay on `location`'s host ([`Error::LocationMismatch`] otherwise).
///
/// # Errors
/// On oversize or malformed XML, when no WANIPConnection/WANPPPConnection service exists, or
/// when its control URL is bad or points elsewhere.
pub fn parse_description(xml: &[u8], location: &HttpUrl) -> Result<Description, Error> {
    with_document(xml, |doc| {
        let root = doc.root_element();
        let base = match child_text(root, "URLBase") {
            Some(text) if !text.is_empty() => HttpUrl::parse(text)?,
            _ => location.clone(),
        };
        let device = child(root, "device");
        let friendly_name = device.and_then(|d| child_text(d, "friendlyName")).map(clip);
        let model_name = device.and_then(|d| child_text(d, "modelName")).map(clip);
        let mut best: Option<(ServiceKind, &str, &str)> = None;
        for service in root
            .descendants()
            .filter(|n| n.is_element() && n.tag_name().name() == "service")
        {
            let (Some(st), Some(ctl)) = (
                child_text(service, "serviceType"),
                child_text(service, "controlURL"),
            ) else {
                continue;
            };
            if let Some(kind) = ServiceKind::from_type(st)
                && best.is_none_or(|(k, ..)| kind < k)
            {
                best = Some((kind, st, ctl));
            }
        }
        let (kind, service_type, control) = best.ok_or(Error::NoIgdService)?;
        let control_url = base.join(control)?;
        if control_url.host != location.host {
            return Err(Error::LocationMismatch {
                responder: location.host,
                location: control_url.host,
            });
        }
        Ok(Description {
            friendly_name,
            model_name,
            service: Service {
                kind,
                service_type: clip(service_type),
                control_url,
            },
        })
    })
}

/// Parses `xml` under this crate's limits and runs `f` on the document.
pub(crate) fn with_document<T>(
    xml: &[u8],
    f: impl FnOnce(&Document<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    if xml.len() > MAX_HTTP_BODY {
        return Err(Error::XmlTooLarge {
            len: xml.len(),
            max: MAX_HTTP_BODY,
        });
    }
    let text = std::str::from_utf8(xml).map_err(|_| Error::XmlSyntax("not UTF-8".to_owned()))?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
    };
    let doc =
        Document::parse_with_options(text, options).map_err(|e| Error::XmlSyntax(e.to_string()))?;
    f(&doc)
}

/// The first child element named `name` (any namespace).
pub(crate) fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of the first child element named `name`.
pub(crate) fn child_text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).map(|c| c.text().unwrap_or_default().trim())
}

fn clip(text: &str) -> String {
    let mut end = text.len().min(MAX_XML_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    const MINIUPNPD: &[u8] = include_bytes!("../testdata/miniupnpd-2.3.1-rootDesc.xml");
    const PPP: &[u8] = include_bytes!("../testdata/ppp-urlbase.xml");

    fn loc() -> HttpUrl {
        HttpUrl::parse("http://192.168.77.1:5000/rootDesc.xml").unwrap()
    }

    #[test]
    fn finds_wanipconnection_in_miniupnpd_description() {
        let d = parse_description(MINIUPNPD, &loc()).unwrap();
        assert_eq!(d.model_name.as_deref(), Some("Debian router"));
        assert_eq!(d.service.kind, ServiceKind::WanIp2);
        assert_eq!(
            d.service.service_type,
            "urn:schemas-upnp-org:service:WANIPConnection:2"
        );
        assert_eq!(
            d.service.control_url.to_string(),
            "http://192.168.77.1:5000/ctl/IPConn"
        );
    }

    #[test]
    fn ppp_with_urlbase_and_relative_control_url() {
        let location = HttpUrl::parse("http://10.0.0.138:49152/desc.xml").unwrap();
        let d = parse_description(PPP, &location).unwrap();
        assert_eq!(d.service.kind, ServiceKind::WanPpp);
        assert_eq!(
            d.service.control_url.to_string(),
            "http://10.0.0.138:49152/upnp/control/WANPPPConn1"
        );
        assert_eq!(d.friendly_name.as_deref(), Some("Fritz Box-like router"));
    }

    #[test]
    fn control_url_elsewhere_is_refused() {
        let xml = br#"<root xmlns="urn:schemas-upnp-org:device-1-0"><device><serviceList><service>
            <serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>
            <controlURL>http://8.8.8.8/ctl</controlURL></service></serviceList></device></root>"#;
        assert!(matches!(
            parse_description(xml, &loc()),
            Err(Error::LocationMismatch { .. })
        ));
    }

    #[test]
    fn hostile_documents() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><root>&lol2;</root>"#;
        assert!(matches!(
            parse_description(bomb, &loc()),
            Err(Error::XmlSyntax(_))
        ));
        let big = vec![b' '; MAX_HTTP_BODY + 1];
        assert!(matches!(
            parse_description(&big, &loc()),
            Err(Error::XmlTooLarge { .. })
        ));
        let mut many = b"<root>".to_vec();
        for _ in 0..5000 {
            many.extend_from_slice(b"<a/>");
        }
        many.extend_from_slice(b"</root>");
        assert!(matches!(
            parse_description(&many, &loc()),
            Err(Error::XmlSyntax(_))
        ));
        let deep = format!("{}{}", "<a>".repeat(3000), "</a>".repeat(3000));
        assert!(parse_description(deep.as_bytes(), &loc()).is_err());
        assert_eq!(
            parse_description(b"<root><device/></root>", &loc()),
            Err(Error::NoIgdService)
        );
    }

    #[quickcheck]
    fn never_panics(data: Vec<u8>) -> bool {
        let _ = parse_description(&data, &loc());
        true
    }
}
