//! The BitTorrent Mainline DHT without I/O.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod krpc;
pub mod limits;
pub mod routing;

pub use error::Error;
pub use krpc::{Body, Message, NodeInfo, Query, Response};
pub use routing::RoutingTable;
