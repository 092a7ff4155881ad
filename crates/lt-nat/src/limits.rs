//! Caps on everything read from the network (STYLE.md section 4).

use std::time::Duration;

/// Largest NAT-PMP or PCP datagram accepted (RFC 6887 section 7: at most 1100 bytes).
pub const MAX_PMP_PACKET: usize = 1100;
/// Largest SSDP response datagram accepted.
pub const MAX_SSDP_RESPONSE: usize = 2048;
/// Largest HTTP header section (status line and headers) accepted from a gateway.
pub const MAX_HTTP_HEADER: usize = 8 * 1024;
/// Largest HTTP body (device description or SOAP response) accepted from a gateway.
pub const MAX_HTTP_BODY: usize = 64 * 1024;
/// Largest number of XML nodes parsed from one document.
pub const MAX_XML_NODES: u32 = 4096;
/// Most nested `<device>` levels searched in a device description.
pub const MAX_DEVICE_DEPTH: usize = 8;
/// Longest string kept from XML text (model names, URLs).
pub const MAX_XML_TEXT: usize = 512;
/// Default cap on concurrent mappings per client.
pub const DEFAULT_MAX_MAPPINGS: usize = 64;
/// Default timeout of one HTTP exchange with the gateway (driver).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
