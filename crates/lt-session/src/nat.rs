//! Port mapping with lt-nat's driver: the listen port is mapped for TCP (and for UDP, where
//! uTP and the DHT listen on the same port) when the session starts, gateway events become
//! alerts, and mappings are removed at shutdown.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use lt_engine::Alert;
use lt_nat::driver::{DriverConfig, PortMapper};
use lt_nat::{Event, Protocol, Transport};
use tokio::sync::mpsc;

use crate::SessionSettings;

enum Command {
    Add(Protocol, u16, u16, std_mpsc::Sender<Option<usize>>),
    Delete(usize),
    Shutdown(Duration, std_mpsc::Sender<()>),
}

/// The session's side of the port-mapping task.
pub(crate) struct NatHandle {
    commands: mpsc::UnboundedSender<Command>,
}

const fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Upnp => "UPnP",
        Transport::NatPmp => "NAT-PMP",
        Transport::Pcp => "PCP",
        _ => "port mapping",
    }
}

const fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

fn alert(event: Event) -> Option<Alert> {
    Some(match event {
        Event::Mapped {
            index,
            transport,
            protocol,
            external_port,
            ..
        } => Alert::PortMap {
            mapping: index.0,
            transport: transport_name(transport).into(),
            protocol: protocol_name(protocol).into(),
            external_port,
        },
        Event::MapFailed {
            index,
            transport,
            error,
        } => Alert::PortMapError {
            mapping: index.0,
            transport: transport_name(transport).into(),
            error: error.to_string(),
        },
        Event::ExternalIp { address, .. } => Alert::ExternalIp { address },
        Event::Log { transport, message } => Alert::PortMapLog {
            transport: transport_name(transport).into(),
            message,
        },
        Event::Unmapped { index, transport } => Alert::PortMapLog {
            transport: transport_name(transport).into(),
            message: format!("mapping {} removed", index.0),
        },
        _ => return None,
    })
}

/// Starts the port mapper and maps each of `ports` for TCP (and UDP with `udp`).
pub(crate) fn start(
    runtime: &tokio::runtime::Runtime,
    settings: &SessionSettings,
    ports: &[u16],
    udp: bool,
    inputs: mpsc::Sender<crate::Event>,
) -> NatHandle {
    let mut config = DriverConfig::default();
    if !settings.enable_upnp {
        config.upnp = None;
    }
    if !settings.enable_natpmp {
        config.natpmp = None;
    }
    config.gateway = settings.natpmp_gateway;
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    let ports = ports.to_vec();
    runtime.spawn(async move {
        let (mapper, mut events) = match PortMapper::start(config).await {
            Ok(m) => m,
            Err(e) => {
                let _ = inputs
                    .send(crate::Event::Alert(Alert::PortMapError {
                        mapping: usize::MAX,
                        transport: "port mapping".into(),
                        error: e.to_string(),
                    }))
                    .await;
                return;
            }
        };
        for port in ports {
            let _ = mapper.add_mapping(Protocol::Tcp, port, port).await;
            if udp {
                let _ = mapper.add_mapping(Protocol::Udp, port, port).await;
            }
        }
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    if let Some(a) = alert(event) {
                        let _ = inputs.send(crate::Event::Alert(a)).await;
                    }
                }
                command = rx.recv() => match command {
                    Some(Command::Add(protocol, external, local, reply)) => {
                        let r = mapper.add_mapping(protocol, external, local).await.ok().map(|i| i.0);
                        let _ = reply.send(r);
                    }
                    Some(Command::Delete(i)) => {
                        let _ = mapper.delete_mapping(lt_nat::MappingIndex(i)).await;
                    }
                    Some(Command::Shutdown(timeout, done)) => {
                        mapper.shutdown(timeout).await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                }
            }
        }
    });
    NatHandle { commands: tx }
}

impl NatHandle {
    pub(crate) fn add(&self, protocol: Protocol, external: u16, local: u16) -> Option<usize> {
        let (reply, rx) = std_mpsc::channel();
        self.commands
            .send(Command::Add(protocol, external, local, reply))
            .ok()?;
        rx.recv_timeout(Duration::from_secs(10)).ok().flatten()
    }

    pub(crate) fn delete(&self, mapping: usize) {
        let _ = self.commands.send(Command::Delete(mapping));
    }

    /// Deletes every mapping and stops the task, without waiting.
    pub(crate) fn stop(self) {
        let (done, _) = std_mpsc::channel();
        let _ = self
            .commands
            .send(Command::Shutdown(Duration::from_secs(2), done));
    }

    /// Deletes every mapping (waiting at most `timeout`) and stops the task.
    pub(crate) fn shutdown(self, timeout: Duration) {
        let (done, rx) = std_mpsc::channel();
        if self.commands.send(Command::Shutdown(timeout, done)).is_ok() {
            let _ = rx.recv_timeout(timeout + Duration::from_secs(1));
        }
    }
}
