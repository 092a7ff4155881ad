//! The BitTorrent Mainline DHT without I/O.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod krpc;
pub mod limits;
mod node;
pub mod routing;

pub use error::Error;
pub use krpc::{Body, Message, NodeInfo, Query, Response};
pub use node::{CommandError, Config, Dht, Event, LookupId, LookupKind, Transmit};
pub use routing::RoutingTable;
