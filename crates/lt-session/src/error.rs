//! Errors of the session API.

use std::net::SocketAddr;

/// Errors of the session API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Listening failed on every interface.
    #[error("could not listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error("could not start the session's runtime: {0}")]
    Runtime(std::io::Error),
    /// The storage could not be set up.
    #[error("storage: {0}")]
    Storage(#[from] lt_storage::Error),
    /// The engine refused the torrent.
    #[error(transparent)]
    Add(#[from] lt_engine::AddError),
    /// A saved session state that cannot be read.
    #[error("session state: {0}")]
    State(String),
    /// Metadata that cannot be used.
    #[error("metadata: {0}")]
    Metadata(lt_metainfo::Error),
    /// Proxy settings that cannot be used (a host name that is not one).
    #[error("proxy: {0}")]
    Proxy(String),
    /// The torrent is no longer in the session.
    #[error("invalid torrent handle")]
    InvalidHandle,
    /// An SSL torrent's certificate that cannot be used.
    #[error("SSL: {0}")]
    Ssl(#[from] crate::SslError),
}
