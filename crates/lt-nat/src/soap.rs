//! SOAP actions of WANIPConnection / WANPPPConnection (v1 and v2): request bodies and the
//! parsing of responses and UPnP faults.

use std::net::IpAddr;

use crate::Protocol;
use crate::error::Error;
use crate::http::{HttpResponse, HttpUrl, soap_request};
use crate::igd::{child, child_text, with_document};
use crate::limits::MAX_XML_TEXT;

/// UPnP error 714: NoSuchEntryInArray.
pub const NO_SUCH_ENTRY: u16 = 714;
/// UPnP error 716: WildCardNotPermittedInExtPort.
pub const WILDCARD_NOT_PERMITTED_IN_EXT_PORT: u16 = 716;
/// UPnP error 718: ConflictInMappingEntry (the external port is taken).
pub const CONFLICT_IN_MAPPING_ENTRY: u16 = 718;
/// UPnP error 724: SamePortValuesRequired.
pub const SAME_PORT_VALUES_REQUIRED: u16 = 724;
/// UPnP error 725: OnlyPermanentLeasesSupported.
pub const ONLY_PERMANENT_LEASES_SUPPORTED: u16 = 725;

/// A SOAP action on the WAN connection service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// `GetExternalIPAddress`.
    GetExternalIpAddress,
    /// `AddPortMapping` (any remote host).
    AddPortMapping {
        /// External port.
        external_port: u16,
        /// TCP or UDP.
        protocol: Protocol,
        /// Port on the internal client.
        internal_port: u16,
        /// Address of the internal client (this host).
        internal_client: IpAddr,
        /// Shown in the router's UI (XML-escaped here).
        description: String,
        /// Seconds; 0 = permanent.
        lease_duration: u32,
    },
    /// `DeletePortMapping`.
    DeletePortMapping {
        /// External port.
        external_port: u16,
        /// TCP or UDP.
        protocol: Protocol,
    },
    /// `GetSpecificPortMappingEntry`.
    GetSpecificPortMappingEntry {
        /// External port.
        external_port: u16,
        /// TCP or UDP.
        protocol: Protocol,
    },
}

/// The answer to an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionResponse {
    /// `GetExternalIPAddress`: the address (`None` when the gateway reports none).
    ExternalIpAddress(Option<IpAddr>),
    /// `AddPortMapping` succeeded.
    Added,
    /// `DeletePortMapping` succeeded.
    Deleted,
    /// `GetSpecificPortMappingEntry`: the entry.
    Entry(PortMappingEntry),
}

/// A port mapping as `GetSpecificPortMappingEntry` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMappingEntry {
    /// Port on the internal client.
    pub internal_port: u16,
    /// The internal client's address.
    pub internal_client: IpAddr,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its description.
    pub description: String,
    /// Remaining lease in seconds (0 = permanent).
    pub lease_duration: u32,
}

impl Action {
    /// The action's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::GetExternalIpAddress => "GetExternalIPAddress",
            Self::AddPortMapping { .. } => "AddPortMapping",
            Self::DeletePortMapping { .. } => "DeletePortMapping",
            Self::GetSpecificPortMappingEntry { .. } => "GetSpecificPortMappingEntry",
        }
    }

    /// The SOAP envelope for this action of `service_type`.
    #[must_use]
    pub fn body(&self, service_type: &str) -> String {
        let name = self.name();
        let args = match self {
            Self::GetExternalIpAddress => String::new(),
            Self::AddPortMapping {
                external_port,
                protocol,
                internal_port,
                internal_client,
                description,
                lease_duration,
            } => format!(
                "<NewRemoteHost></NewRemoteHost><NewExternalPort>{external_port}</NewExternalPort>\
                 <NewProtocol>{}</NewProtocol><NewInternalPort>{internal_port}</NewInternalPort>\
                 <NewInternalClient>{internal_client}</NewInternalClient><NewEnabled>1</NewEnabled>\
                 <NewPortMappingDescription>{}</NewPortMappingDescription>\
                 <NewLeaseDuration>{lease_duration}</NewLeaseDuration>",
                protocol.as_str(),
                escape(description)
            ),
            Self::DeletePortMapping {
                external_port,
                protocol,
            }
            | Self::GetSpecificPortMappingEntry {
                external_port,
                protocol,
            } => format!(
                "<NewRemoteHost></NewRemoteHost><NewExternalPort>{external_port}</NewExternalPort>\
                 <NewProtocol>{}</NewProtocol>",
                protocol.as_str()
            ),
        };
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:{name} xmlns:u=\"{st}\">{args}</u:{name}></s:Body></s:Envelope>\r\n",
            st = escape(service_type)
        )
    }

    /// The whole HTTP request posting this action to `control_url`.
    #[must_use]
    pub fn request(&self, control_url: &HttpUrl, service_type: &str) -> Vec<u8> {
        let soap_action = format!("{service_type}#{}", self.name());
        soap_request(control_url, &soap_action, &self.body(service_type))
    }

    /// Parses the gateway's HTTP response to this action.
    ///
    /// # Errors
    /// [`Error::SoapFault`] with the UPnP error code of a fault; [`Error::HttpStatus`] for
    /// another non-200 status; XML errors for malformed bodies.
    pub fn parse_response(&self, response: &HttpResponse) -> Result<ActionResponse, Error> {
        if response.status != 200 {
            let fault = with_document(&response.body, |doc| {
                let code = doc
                    .descendants()
                    .find(|n| n.is_element() && n.tag_name().name() == "errorCode")
                    .and_then(|n| n.text())
                    .ok_or(Error::MissingElement("errorCode"))?;
                code.trim()
                    .parse::<u16>()
                    .map_err(|_| Error::BadValue("errorCode"))
            });
            return Err(match fault {
                Ok(code) => Error::SoapFault { code },
                Err(_) => Error::HttpStatus(response.status),
            });
        }
        let wanted = format!("{}Response", self.name());
        with_document(&response.body, |doc| {
            let resp = doc
                .descendants()
                .find(|n| n.is_element() && n.tag_name().name() == wanted)
                .ok_or(Error::MissingElement("ActionResponse"))?;
            Ok(match self {
                Self::GetExternalIpAddress => {
                    let text = child_text(resp, "NewExternalIPAddress")
                        .ok_or(Error::MissingElement("NewExternalIPAddress"))?;
                    if text.is_empty() {
                        ActionResponse::ExternalIpAddress(None)
                    } else {
                        ActionResponse::ExternalIpAddress(Some(
                            text.parse()
                                .map_err(|_| Error::BadValue("NewExternalIPAddress"))?,
                        ))
                    }
                }
                Self::AddPortMapping { .. } => ActionResponse::Added,
                Self::DeletePortMapping { .. } => ActionResponse::Deleted,
                Self::GetSpecificPortMappingEntry { .. } => {
                    let field = |name: &'static str| {
                        child(resp, name)
                            .map(|n| n.text().unwrap_or_default().trim())
                            .ok_or(Error::MissingElement(name))
                    };
                    let description = field("NewPortMappingDescription").unwrap_or_default();
                    ActionResponse::Entry(PortMappingEntry {
                        internal_port: field("NewInternalPort")?
                            .parse()
                            .map_err(|_| Error::BadValue("NewInternalPort"))?,
                        internal_client: field("NewInternalClient")?
                            .parse()
                            .map_err(|_| Error::BadValue("NewInternalClient"))?,
                        enabled: matches!(field("NewEnabled")?, "1" | "true" | "yes"),
                        description: description.chars().take(MAX_XML_TEXT).collect(),
                        lease_duration: field("NewLeaseDuration")
                            .ok()
                            .filter(|t| !t.is_empty())
                            .map_or(Ok(0), str::parse)
                            .map_err(|_| Error::BadValue("NewLeaseDuration"))?,
                    })
                }
            })
        })
    }
}

/// XML-escapes text for element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_response;
    use quickcheck_macros::quickcheck;

    const ST: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";

    fn fixture(name: &str) -> HttpResponse {
        let path = format!(
            "{}/testdata/miniupnpd-2.3.1-{name}.http",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap();
        parse_response(&bytes, true).unwrap().unwrap()
    }

    fn add() -> Action {
        Action::AddPortMapping {
            external_port: 7777,
            protocol: Protocol::Tcp,
            internal_port: 7777,
            internal_client: "192.168.77.2".parse().unwrap(),
            description: "lt <&> \"x\"".to_owned(),
            lease_duration: 60,
        }
    }

    fn key(port: u16) -> (u16, Protocol) {
        (port, Protocol::Tcp)
    }

    #[test]
    fn miniupnpd_responses() {
        assert_eq!(
            Action::GetExternalIpAddress.parse_response(&fixture("ext")),
            Ok(ActionResponse::ExternalIpAddress(Some(
                "93.184.216.34".parse().unwrap()
            )))
        );
        assert_eq!(
            add().parse_response(&fixture("add")),
            Ok(ActionResponse::Added)
        );
        assert_eq!(
            add().parse_response(&fixture("conflict")),
            Err(Error::SoapFault {
                code: CONFLICT_IN_MAPPING_ENTRY
            })
        );
        let (external_port, protocol) = key(7777);
        let get = Action::GetSpecificPortMappingEntry {
            external_port,
            protocol,
        };
        assert_eq!(
            get.parse_response(&fixture("entry")),
            Ok(ActionResponse::Entry(PortMappingEntry {
                internal_port: 7777,
                internal_client: "192.168.77.2".parse().unwrap(),
                enabled: true,
                description: "x".to_owned(),
                lease_duration: 60
            }))
        );
        assert_eq!(
            get.parse_response(&fixture("nosuch")),
            Err(Error::SoapFault {
                code: NO_SUCH_ENTRY
            })
        );
        let del = Action::DeletePortMapping {
            external_port,
            protocol,
        };
        assert_eq!(
            del.parse_response(&fixture("del")),
            Ok(ActionResponse::Deleted)
        );
        // The wrong action's response is an error, not a success.
        assert!(del.parse_response(&fixture("add")).is_err());
    }

    #[test]
    fn request_is_escaped_and_well_formed() {
        let url = HttpUrl::parse("http://192.168.77.1:5000/ctl/IPConn").unwrap();
        let req = String::from_utf8(add().request(&url, ST)).unwrap();
        assert!(req.starts_with("POST /ctl/IPConn HTTP/1.1\r\nHost: 192.168.77.1:5000\r\n"));
        assert!(req.contains(&format!("SOAPAction: \"{ST}#AddPortMapping\"\r\n")));
        assert!(req.contains(
            "<NewPortMappingDescription>lt &lt;&amp;&gt; &quot;x&quot;</NewPortMappingDescription>"
        ));
        let body = &req[req.find("\r\n\r\n").unwrap() + 4..];
        assert!(req.contains(&format!("Content-Length: {}\r\n", body.len())));
        // The body is XML our own parser accepts.
        with_document(body.as_bytes(), |_| Ok(())).unwrap();
    }

    #[test]
    fn non_soap_error_is_http_status() {
        let r = HttpResponse {
            status: 404,
            body: b"not found".to_vec(),
        };
        assert_eq!(
            Action::GetExternalIpAddress.parse_response(&r),
            Err(Error::HttpStatus(404))
        );
    }

    #[quickcheck]
    fn never_panics(body: Vec<u8>, status: u16) -> bool {
        let r = HttpResponse { status, body };
        let _ = Action::GetExternalIpAddress.parse_response(&r);
        let _ = Action::GetSpecificPortMappingEntry {
            external_port: 1,
            protocol: Protocol::Udp,
        }
        .parse_response(&r);
        true
    }
}
