//! `cargo run -p lt-nat --features tokio --example map_port -- [PORT]`: maps TCP and UDP PORT
//! (default 6881) on the LAN gateway with UPnP and NAT-PMP/PCP, prints the events for 15
//! seconds, then deletes the mappings.

use std::time::Duration;

use lt_nat::Protocol;
use lt_nat::driver::{DriverConfig, PortMapper};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lt_nat::Error> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(6881);
    let (mapper, mut events) = PortMapper::start(DriverConfig::default()).await?;
    mapper.add_mapping(Protocol::Tcp, port, port).await?;
    mapper.add_mapping(Protocol::Udp, port, port).await?;
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.recv().await {
            println!("{event:?}");
        }
    })
    .await;
    mapper.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
