//! The tokio driver (feature `tokio`): [`PortMapper`] runs a [`PmpClient`] (NAT-PMP/PCP) and
//! an [`UpnpClient`] on real sockets in one task.
//!
//! It owns two UDP sockets (NAT-PMP/PCP to the gateway's port 5351, and SSDP), performs the
//! UPnP HTTP exchanges itself over [`tokio::net::TcpStream`] (plain HTTP/1.1 to a gateway on
//! the LAN, one request per connection, bounded by [`DriverConfig::http_timeout`] and the
//! header/body caps of [`crate::limits`]: no HTTP client crate is needed), and reports
//! [`Event`]s on a bounded tokio mpsc channel. Indices returned by
//! [`PortMapper::add_mapping`] cover both mechanisms: events carry the same index with the
//! [`crate::Transport`] that produced them.
//!
//! ```no_run
//! use std::time::Duration;
//! use lt_nat::Protocol;
//! use lt_nat::driver::{DriverConfig, PortMapper};
//!
//! # async fn run() -> Result<(), lt_nat::Error> {
//! let (mapper, mut events) = PortMapper::start(DriverConfig::default()).await?;
//! let index = mapper.add_mapping(Protocol::Tcp, 6881, 6881).await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}"); // Mapped { index, transport, external_port, .. }, ExternalIp, ...
//!     # break;
//! }
//! mapper.delete_mapping(index).await?;
//! mapper.shutdown(Duration::from_secs(5)).await; // deletes what is left, bounded
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, trace};

use crate::http::{HttpResponse, max_response_len, parse_response};
use crate::upnp::HttpRequest;
use crate::{
    Error, Event, MappingIndex, PmpClient, PmpConfig, Protocol, Transport, UpnpClient, UpnpConfig,
};

/// Settings of a [`PortMapper`].
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// UPnP IGD settings; `None` disables UPnP. Default: enabled with
    /// [`UpnpConfig::default`].
    pub upnp: Option<UpnpConfig>,
    /// NAT-PMP/PCP settings; `None` disables both. Default: enabled with
    /// [`PmpConfig::default`].
    pub natpmp: Option<PmpConfig>,
    /// The NAT-PMP/PCP gateway. Default `None`: the default route's gateway from
    /// `/proc/net/route`.
    pub gateway: Option<Ipv4Addr>,
    /// Timeout of one HTTP exchange with the UPnP gateway. Default 5 s.
    pub http_timeout: Duration,
    /// Capacity of the event channel; events that do not fit are dropped (and counted in a
    /// trace). Default 1024.
    pub event_capacity: usize,
    /// Seed for both clients' RNGs. Default `None`: seeded from the process's hasher keys,
    /// which the standard library draws from the OS.
    pub rng_seed: Option<[u8; 32]>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            upnp: Some(UpnpConfig::default()),
            natpmp: Some(PmpConfig::default()),
            gateway: None,
            http_timeout: crate::limits::HTTP_TIMEOUT,
            event_capacity: 1024,
            rng_seed: None,
        }
    }
}

enum Command {
    Add {
        protocol: Protocol,
        external_port: u16,
        local_port: u16,
        reply: oneshot::Sender<Result<MappingIndex, Error>>,
    },
    Delete {
        index: MappingIndex,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Lookup {
        index: MappingIndex,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Rediscover,
    Shutdown {
        deadline: Instant,
    },
}

/// Port mapping over UPnP IGD and NAT-PMP/PCP on real sockets; see the module docs.
///
/// Dropping it without [`PortMapper::shutdown`] stops the task without deleting mappings
/// (they expire with their lease).
#[derive(Debug)]
pub struct PortMapper {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl PortMapper {
    /// Binds the sockets, finds the NAT-PMP gateway, starts the UPnP search and spawns the
    /// driver task on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Io`] when a socket cannot be bound.
    pub async fn start(config: DriverConfig) -> Result<(Self, mpsc::Receiver<Event>), Error> {
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let (commands, commands_rx) = mpsc::channel(64);
        let seed = config.rng_seed.unwrap_or_else(os_seed);
        let now = Instant::now().into_std();
        let mut startup_logs = Vec::new();

        let mut pmp = None;
        if let Some(mut pmp_config) = config.natpmp.clone() {
            let gateway = match config.gateway {
                Some(gw) => Some(gw),
                // A small procfs file: reading it blocks for microseconds.
                None => match std::fs::read_to_string("/proc/net/route") {
                    Ok(text) => crate::route::default_gateway(&text).map(|(gw, _)| gw),
                    Err(e) => {
                        startup_logs.push(format!("cannot read /proc/net/route: {e}"));
                        None
                    }
                },
            };
            match gateway {
                Some(gw) => {
                    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
                    let local = local_addr_towards(gw)
                        .await
                        .unwrap_or(Ipv4Addr::UNSPECIFIED);
                    pmp_config.rng_seed = Some(pmp_config.rng_seed.unwrap_or(seed));
                    startup_logs.push(format!("NAT-PMP/PCP gateway {gw}, local address {local}"));
                    pmp = Some((PmpClient::new(pmp_config, gw, local), socket));
                }
                None => startup_logs.push("no default gateway: NAT-PMP/PCP disabled".to_owned()),
            }
        }

        let mut upnp = None;
        if let Some(mut upnp_config) = config.upnp.clone() {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
            socket.set_multicast_ttl_v4(2)?;
            let mut seed = seed;
            seed[0] ^= 0x55;
            upnp_config.rng_seed = Some(upnp_config.rng_seed.unwrap_or(seed));
            upnp = Some((UpnpClient::new(upnp_config, now), socket));
        }

        let (http_tx, http_rx) = mpsc::channel(4);
        let mut driver = Driver {
            pmp,
            upnp,
            events: events_tx,
            dropped: 0,
            slots: Vec::new(),
            from_pmp: HashMap::new(),
            from_upnp: HashMap::new(),
            http_tx,
            http_timeout: config.http_timeout,
            shutdown: None,
        };
        for message in startup_logs {
            driver.emit(Event::Log {
                transport: Transport::NatPmp,
                message,
            });
        }
        let task = tokio::spawn(driver.run(commands_rx, http_rx));
        Ok((Self { commands, task }, events_rx))
    }

    /// Maps `external_port` (0 = let the gateway choose / use the local port) to `local_port`
    /// of this host over every enabled mechanism.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when too many mappings exist or the driver has stopped.
    pub async fn add_mapping(
        &self,
        protocol: Protocol,
        external_port: u16,
        local_port: u16,
    ) -> Result<MappingIndex, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Add {
            protocol,
            external_port,
            local_port,
            reply,
        })
        .await?;
        rx.await.map_err(|_| stopped())?
    }

    /// Deletes a mapping on every mechanism; [`Event::Unmapped`] follows for each.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for an unknown index or when the driver has stopped.
    pub async fn delete_mapping(&self, index: MappingIndex) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Delete { index, reply }).await?;
        rx.await.map_err(|_| stopped())?
    }

    /// Asks the UPnP gateway for its entry of a mapping (GetSpecificPortMappingEntry);
    /// [`Event::MappingEntry`] follows.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for an unknown index, one not mapped over UPnP yet, or when the
    /// driver has stopped.
    pub async fn lookup_mapping(&self, index: MappingIndex) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Lookup { index, reply }).await?;
        rx.await.map_err(|_| stopped())?
    }

    /// Searches for the UPnP gateway again (call it after a network change); mappings are
    /// re-made on the gateway found.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when the driver has stopped.
    pub async fn rediscover(&self) -> Result<(), Error> {
        self.send(Command::Rediscover).await
    }

    /// Deletes every mapping and stops, waiting at most `timeout` (then the task is aborted
    /// and the remaining mappings expire with their lease).
    pub async fn shutdown(self, timeout: Duration) {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400));
        let _ = self.commands.send(Command::Shutdown { deadline }).await;
        let mut task = self.task;
        if tokio::time::timeout_at(deadline + Duration::from_millis(100), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).await.map_err(|_| stopped())
    }
}

fn stopped() -> Error {
    Error::ApiMisuse("the port mapper has stopped")
}

/// A seed from the OS without a direct dependency: std's `RandomState` keys come from it.
fn os_seed() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(0);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

/// The local address the kernel would use towards `gateway` (a connected UDP socket sends
/// nothing).
async fn local_addr_towards(gateway: Ipv4Addr) -> Option<Ipv4Addr> {
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.ok()?;
    probe
        .connect((gateway, crate::natpmp::SERVER_PORT))
        .await
        .ok()?;
    match probe.local_addr().ok()?.ip() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    pmp: Option<MappingIndex>,
    upnp: Option<MappingIndex>,
}

struct HttpDone {
    id: u64,
    local: Option<IpAddr>,
    result: Result<HttpResponse, Error>,
}

struct Driver {
    pmp: Option<(PmpClient, UdpSocket)>,
    upnp: Option<(UpnpClient, UdpSocket)>,
    events: mpsc::Sender<Event>,
    dropped: u64,
    slots: Vec<Option<Slot>>,
    from_pmp: HashMap<MappingIndex, usize>,
    from_upnp: HashMap<MappingIndex, usize>,
    http_tx: mpsc::Sender<HttpDone>,
    http_timeout: Duration,
    shutdown: Option<Instant>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut http: mpsc::Receiver<HttpDone>,
    ) {
        let mut pmp_buf = vec![0u8; crate::limits::MAX_PMP_PACKET + 1];
        let mut ssdp_buf = vec![0u8; crate::limits::MAX_SSDP_RESPONSE + 1];
        let mut commands_open = true;
        self.flush().await;
        loop {
            if let Some(deadline) = self.shutdown {
                let busy = self.pmp.as_ref().is_some_and(|(c, _)| c.has_mappings())
                    || self.upnp.as_ref().is_some_and(|(c, _)| c.has_mappings());
                if !busy || Instant::now() >= deadline {
                    debug!(busy, "port mapper stopped");
                    return;
                }
            }
            let timeout = self.next_timeout();
            let shutdown_at = self.shutdown;
            tokio::select! {
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => {
                        commands_open = false;
                        if self.shutdown.is_none() {
                            return;
                        }
                    }
                },
                r = recv(self.pmp.as_ref().map(|(_, s)| s), &mut pmp_buf) => {
                    if let (Ok((len, from)), Some((client, _))) = (r, self.pmp.as_mut()) {
                        client.handle_datagram(now(), from, pmp_buf.get(..len).unwrap_or_default());
                    }
                }
                r = recv(self.upnp.as_ref().map(|(_, s)| s), &mut ssdp_buf) => {
                    if let (Ok((len, from)), Some((client, _))) = (r, self.upnp.as_mut()) {
                        client.handle_datagram(now(), from, ssdp_buf.get(..len).unwrap_or_default());
                    }
                }
                Some(done) = http.recv() => {
                    if let Some((client, _)) = self.upnp.as_mut() {
                        client.handle_http_response(now(), done.id, done.local, done.result);
                    }
                }
                () = sleep_until(timeout) => {
                    let t = now();
                    if let Some((c, _)) = self.pmp.as_mut() { c.handle_timeout(t); }
                    if let Some((c, _)) = self.upnp.as_mut() { c.handle_timeout(t); }
                }
                () = sleep_until(shutdown_at) => {}
            }
            self.flush().await;
        }
    }

    fn command(&mut self, cmd: Command) {
        let t = now();
        match cmd {
            Command::Add {
                protocol,
                external_port,
                local_port,
                reply,
            } => {
                let _ = reply.send(self.add(t, protocol, external_port, local_port));
            }
            Command::Delete { index, reply } => {
                let _ = reply.send(self.delete(t, index));
            }
            Command::Lookup { index, reply } => {
                let result = match (self.slot(index), self.upnp.as_mut()) {
                    (Some(Slot { upnp: Some(u), .. }), Some((c, _))) => c.lookup_mapping(t, u),
                    _ => Err(Error::ApiMisuse("no UPnP mapping with this index")),
                };
                let _ = reply.send(result);
            }
            Command::Rediscover => {
                if let Some((c, _)) = self.upnp.as_mut() {
                    c.rediscover(t);
                }
            }
            Command::Shutdown { deadline } => {
                self.shutdown = Some(deadline);
                for i in 0..self.slots.len() {
                    let _ = self.delete(t, MappingIndex(i));
                }
            }
        }
    }

    fn slot(&self, index: MappingIndex) -> Option<Slot> {
        self.slots.get(index.0).copied().flatten()
    }

    fn add(
        &mut self,
        t: std::time::Instant,
        protocol: Protocol,
        external_port: u16,
        local_port: u16,
    ) -> Result<MappingIndex, Error> {
        if self.shutdown.is_some() {
            return Err(stopped());
        }
        let max = crate::limits::DEFAULT_MAX_MAPPINGS;
        let global = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.slots.len() < max => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(Error::ApiMisuse("too many mappings")),
        };
        let mut slot = Slot::default();
        if let Some((c, _)) = self.pmp.as_mut() {
            let i = c.add_mapping(t, protocol, external_port, local_port)?;
            self.from_pmp.insert(i, global);
            slot.pmp = Some(i);
        }
        if let Some((c, _)) = self.upnp.as_mut() {
            match c.add_mapping(t, protocol, external_port, local_port) {
                Ok(i) => {
                    self.from_upnp.insert(i, global);
                    slot.upnp = Some(i);
                }
                Err(e) => {
                    if let (Some(i), Some((c, _))) = (slot.pmp, self.pmp.as_mut()) {
                        let _ = c.delete_mapping(t, i);
                    }
                    return Err(e);
                }
            }
        }
        self.slots[global] = Some(slot);
        Ok(MappingIndex(global))
    }

    fn delete(&mut self, t: std::time::Instant, index: MappingIndex) -> Result<(), Error> {
        let slot = self
            .slot(index)
            .ok_or(Error::ApiMisuse("unknown mapping index"))?;
        if let (Some(i), Some((c, _))) = (slot.pmp, self.pmp.as_mut()) {
            let _ = c.delete_mapping(t, i);
        }
        if let (Some(i), Some((c, _))) = (slot.upnp, self.upnp.as_mut()) {
            let _ = c.delete_mapping(t, i);
        }
        Ok(())
    }

    fn next_timeout(&self) -> Option<Instant> {
        let a = self.pmp.as_ref().and_then(|(c, _)| c.poll_timeout());
        let b = self.upnp.as_ref().and_then(|(c, _)| c.poll_timeout());
        let t = match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        t.map(Instant::from_std)
    }

    /// Drains both clients: datagrams, HTTP exchanges, then events (the driver rule).
    async fn flush(&mut self) {
        if let Some((client, socket)) = self.pmp.as_mut() {
            while let Some(t) = client.poll_transmit() {
                if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                    debug!(error = %e, "NAT-PMP send failed");
                }
            }
        }
        if let Some((client, socket)) = self.upnp.as_mut() {
            while let Some(t) = client.poll_transmit() {
                if let Err(e) = socket.send_to(&t.contents, t.destination).await {
                    debug!(error = %e, "SSDP send failed");
                }
            }
            while let Some(req) = client.poll_http() {
                let tx = self.http_tx.clone();
                let timeout = self.http_timeout;
                tokio::spawn(async move {
                    let id = req.id;
                    let (local, result) =
                        match tokio::time::timeout(timeout, http_exchange(req)).await {
                            Ok(r) => r,
                            Err(_) => (None, Err(Error::Io(std::io::ErrorKind::TimedOut))),
                        };
                    let _ = tx.send(HttpDone { id, local, result }).await;
                });
            }
        }
        let mut out = Vec::new();
        if let Some((client, _)) = self.pmp.as_mut() {
            out.extend(std::iter::from_fn(|| client.poll_event()));
        }
        if let Some((client, _)) = self.upnp.as_mut() {
            out.extend(std::iter::from_fn(|| client.poll_event()));
        }
        for event in out {
            let event = self.globalize(event);
            self.emit(event);
        }
    }

    /// Rewrites a client's mapping index into the driver's, freeing slots when unmapped.
    fn globalize(&mut self, event: Event) -> Event {
        let transport = match &event {
            Event::Mapped { transport, .. }
            | Event::MapFailed { transport, .. }
            | Event::Unmapped { transport, .. } => *transport,
            Event::MappingEntry { .. } => Transport::Upnp,
            _ => return event,
        };
        let table = if transport == Transport::Upnp {
            &mut self.from_upnp
        } else {
            &mut self.from_pmp
        };
        let remap = |index: MappingIndex, table: &HashMap<MappingIndex, usize>| {
            MappingIndex(table.get(&index).copied().unwrap_or(usize::MAX))
        };
        match event {
            Event::Unmapped { index, transport } => {
                let global = table.remove(&index);
                if let Some(g) = global
                    && let Some(Some(slot)) = self.slots.get_mut(g)
                {
                    if transport == Transport::Upnp {
                        slot.upnp = None;
                    } else {
                        slot.pmp = None;
                    }
                    if slot.pmp.is_none() && slot.upnp.is_none() {
                        self.slots[g] = None;
                    }
                }
                Event::Unmapped {
                    index: MappingIndex(global.unwrap_or(usize::MAX)),
                    transport,
                }
            }
            Event::Mapped {
                index,
                transport,
                protocol,
                external_port,
                local_port,
            } => Event::Mapped {
                index: remap(index, table),
                transport,
                protocol,
                external_port,
                local_port,
            },
            Event::MapFailed {
                index,
                transport,
                error,
            } => Event::MapFailed {
                index: remap(index, table),
                transport,
                error,
            },
            Event::MappingEntry { index, entry } => Event::MappingEntry {
                index: remap(index, table),
                entry,
            },
            other => other,
        }
    }

    fn emit(&mut self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.dropped += 1;
            trace!(
                dropped = self.dropped,
                "event channel full or closed; event dropped"
            );
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One HTTP exchange: connect, write, read until the response is complete (bounded).
async fn http_exchange(req: HttpRequest) -> (Option<IpAddr>, Result<HttpResponse, Error>) {
    let mut stream = match TcpStream::connect(req.destination).await {
        Ok(s) => s,
        Err(e) => return (None, Err(e.into())),
    };
    let local = stream.local_addr().ok().map(|a| a.ip());
    if let Err(e) = stream.write_all(&req.request).await {
        return (local, Err(e.into()));
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) => return (local, Err(e.into())),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        match parse_response(&buf, n == 0) {
            Ok(Some(resp)) => return (local, Ok(resp)),
            Ok(None) if buf.len() > max_response_len() => {
                return (
                    local,
                    Err(Error::HttpBodyTooLong {
                        len: buf.len(),
                        max: crate::limits::MAX_HTTP_BODY,
                    }),
                );
            }
            Ok(None) => {}
            Err(e) => return (local, Err(e)),
        }
    }
}
