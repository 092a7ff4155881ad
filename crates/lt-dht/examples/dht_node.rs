//! A DHT node on a real socket with the tokio driver: joins through the nodes given on the
//! command line, then looks up the peers of an info-hash (and announces itself with
//! `--announce PORT`).
//!
//! `cargo run -p lt-dht --features tokio --example dht_node -- BIND NODE... INFO_HASH_HEX [--announce PORT]`
//!
//! For example, against a local node: `... -- 127.0.0.1:0 127.0.0.21:6881 <40 hex digits>`.

use std::net::SocketAddr;
use std::time::Duration;

use lt_core::Sha1Hash;
use lt_dht::tokio::{DhtConfig, DhtEvent, DhtHandle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let announce = match args.iter().position(|a| a == "--announce") {
        Some(i) => {
            let port = args.get(i + 1).ok_or("--announce needs a port")?.parse()?;
            args.drain(i..=i + 1);
            Some(port)
        }
        None => None,
    };
    let (Some(bind), Some(hash)) = (args.first(), args.last()) else {
        return Err("usage: dht_node BIND NODE... INFO_HASH_HEX [--announce PORT]".into());
    };
    let info_hash = Sha1Hash::from_hex(hash)?;
    let mut config = DhtConfig::bind(bind.parse()?);
    let nodes = args
        .get(1..args.len().saturating_sub(1))
        .unwrap_or_default();
    for n in nodes {
        config.nodes.push(n.parse::<SocketAddr>()?);
    }
    config.lookup_timeout = Duration::from_secs(30);
    let dht = DhtHandle::start(config)?;
    let mut alerts = dht.subscribe();
    // Wait (bounded) for the first bootstrap to finish.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(e) = alerts.recv().await {
            if let DhtEvent::BootstrapDone { nodes } = e {
                println!("bootstrapped: {nodes} nodes");
                break;
            }
        }
    })
    .await;
    let peers = match announce {
        Some(port) => dht.announce(info_hash, Some(port)).await?.peers,
        None => dht.get_peers(info_hash).await,
    };
    println!("{} peers: {peers:?}", peers.len());
    println!("routing table: {} nodes", dht.routing_table_size());
    dht.shutdown();
    Ok(())
}
