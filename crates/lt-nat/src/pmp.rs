//! The NAT-PMP / PCP client state machine.
//!
//! One [`PmpClient`] talks to one gateway on UDP port 5351. It speaks PCP (RFC 6887) MAP
//! first when [`PmpConfig::use_pcp`] is set and falls back to NAT-PMP (RFC 6886) for good when
//! the gateway answers "unsupported version" (in either protocol's framing) or never answers
//! PCP. One request is in flight at a time; each is retransmitted on RFC 6886's schedule
//! (250 ms, doubling) up to [`PmpConfig::max_attempts`] sends.
//!
//! Driver rule: after any input (`add_mapping`, `delete_mapping`, `handle_datagram`,
//! `handle_timeout`), drain [`PmpClient::poll_transmit`], then [`PmpClient::poll_event`], then
//! re-arm one timer from [`PmpClient::poll_timeout`]. Never pass an earlier `now` than before.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::{debug, trace};

use crate::error::Error;
use crate::natpmp::{self, SERVER_PORT};
use crate::pcp;
use crate::{Event, MappingIndex, Protocol, Transmit, Transport};

/// Settings of a [`PmpClient`].
#[derive(Debug, Clone)]
pub struct PmpConfig {
    /// Try PCP before NAT-PMP. Default `true`.
    pub use_pcp: bool,
    /// Lifetime asked for each mapping. Default 2 hours (RFC 6886 section 3.3 recommends
    /// 7200 s). Mappings are renewed at half their granted lifetime.
    pub lifetime: Duration,
    /// First retransmission interval; it doubles after each send. Default 250 ms
    /// (RFC 6886 section 3.1).
    pub initial_retransmit: Duration,
    /// Sends of one request before giving up. Default 9 (RFC 6886 section 3.1: about 64 s
    /// in all).
    pub max_attempts: u32,
    /// Most concurrent mappings. Default [`crate::limits::DEFAULT_MAX_MAPPINGS`].
    pub max_mappings: usize,
    /// Seed of the RNG that makes PCP nonces. `None` uses a fixed seed; the driver seeds it
    /// from the OS.
    pub rng_seed: Option<[u8; 32]>,
}

impl Default for PmpConfig {
    fn default() -> Self {
        Self {
            use_pcp: true,
            lifetime: Duration::from_secs(7200),
            initial_retransmit: Duration::from_millis(250),
            max_attempts: 9,
            max_mappings: crate::limits::DEFAULT_MAX_MAPPINGS,
            rng_seed: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Needs a MAP request (new, renewal or after a gateway reboot).
    NeedMap,
    /// Mapped; renewed at `renew_at`.
    Mapped,
    /// Needs a delete request.
    NeedUnmap,
    /// Failed; kept until deleted so the index stays taken.
    Failed,
}

#[derive(Debug, Clone)]
struct Mapping {
    protocol: Protocol,
    local_port: u16,
    wanted_external: u16,
    external_port: Option<u16>,
    state: State,
    renew_at: Option<Instant>,
    nonce: [u8; 12],
    reported: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    ExternalAddress,
    Map(usize),
    Unmap(usize),
}

#[derive(Debug, Clone)]
struct InFlight {
    job: Job,
    transport: Transport,
    attempts: u32,
    resend_at: Instant,
    bytes: Vec<u8>,
}

/// A NAT-PMP / PCP client for one gateway. See the module docs for the driver rule.
#[derive(Debug)]
pub struct PmpClient {
    config: PmpConfig,
    gateway: SocketAddr,
    client_addr: Ipv4Addr,
    transport: Transport,
    mappings: Vec<Option<Mapping>>,
    in_flight: Option<InFlight>,
    want_external: bool,
    external: Option<IpAddr>,
    epoch: Option<(u32, Instant)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    rng: ChaCha8Rng,
}

impl PmpClient {
    /// A client for `gateway` (port 5351 is used) from this host's `client_addr` (the
    /// address PCP requests carry; the one the driver's socket is bound to). It asks for the
    /// external address at once (in NAT-PMP framing; with PCP, the MAP responses report it).
    #[must_use]
    pub fn new(config: PmpConfig, gateway: Ipv4Addr, client_addr: Ipv4Addr) -> Self {
        let rng = ChaCha8Rng::from_seed(config.rng_seed.unwrap_or([0x4e; 32]));
        let transport = if config.use_pcp {
            Transport::Pcp
        } else {
            Transport::NatPmp
        };
        Self {
            config,
            gateway: SocketAddr::V4(SocketAddrV4::new(gateway, SERVER_PORT)),
            client_addr,
            transport,
            mappings: Vec::new(),
            in_flight: None,
            want_external: true,
            external: None,
            epoch: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
        }
    }

    /// The gateway's address and port.
    #[must_use]
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// The protocol in use: [`Transport::Pcp`] until it falls back to [`Transport::NatPmp`].
    #[must_use]
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The external address last reported by the gateway.
    #[must_use]
    pub fn external_address(&self) -> Option<IpAddr> {
        self.external
    }

    /// Asks the gateway to forward `external_port` (0 = any; a hint the gateway may ignore)
    /// to `local_port` of this host. Progress is reported as [`Event::Mapped`] or
    /// [`Event::MapFailed`] with the returned index.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when [`PmpConfig::max_mappings`] mappings exist.
    pub fn add_mapping(
        &mut self,
        now: Instant,
        protocol: Protocol,
        external_port: u16,
        local_port: u16,
    ) -> Result<MappingIndex, Error> {
        let mut nonce = [0u8; 12];
        self.rng.fill_bytes(&mut nonce);
        let mapping = Mapping {
            protocol,
            local_port,
            wanted_external: external_port,
            external_port: None,
            state: State::NeedMap,
            renew_at: None,
            nonce,
            reported: false,
        };
        let index = insert_slot(&mut self.mappings, mapping, self.config.max_mappings)?;
        self.pump(now);
        Ok(MappingIndex(index))
    }

    /// Removes a mapping from the gateway (a request with lifetime 0). [`Event::Unmapped`]
    /// follows when it is gone, after which the index may be reused.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for an unknown index.
    pub fn delete_mapping(&mut self, now: Instant, index: MappingIndex) -> Result<(), Error> {
        let slot = self
            .mappings
            .get_mut(index.0)
            .ok_or(Error::ApiMisuse("unknown mapping index"))?;
        let mapping = slot
            .as_mut()
            .ok_or(Error::ApiMisuse("unknown mapping index"))?;
        let busy =
            matches!(self.in_flight.as_ref().map(|f| f.job), Some(Job::Map(i)) if i == index.0);
        if mapping.external_port.is_some() || busy {
            mapping.state = State::NeedUnmap;
        } else {
            *slot = None;
            self.events.push_back(Event::Unmapped {
                index,
                transport: self.transport,
            });
        }
        self.pump(now);
        Ok(())
    }

    /// Whether any mapping (or delete request) is still held.
    #[must_use]
    pub fn has_mappings(&self) -> bool {
        self.mappings.iter().any(Option::is_some)
    }

    /// Feeds a datagram received on the client's socket. Datagrams not from the gateway are
    /// ignored (and logged as [`Event::Log`]).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        if from != self.gateway {
            debug!(%from, "NAT-PMP/PCP datagram not from the gateway");
            self.log(format!("ignored datagram: {}", Error::WrongSource { from }));
            return;
        }
        match buf.first() {
            Some(&natpmp::VERSION) => match natpmp::Response::decode(buf) {
                Ok(resp) => self.on_natpmp(now, resp),
                Err(e) => self.log(format!("malformed NAT-PMP reply: {e}")),
            },
            Some(&pcp::VERSION) => match pcp::Response::decode(buf) {
                Ok(resp) => self.on_pcp(now, resp),
                Err(e) => self.log(format!("malformed PCP reply: {e}")),
            },
            Some(&v) => self.log(format!("reply: {}", Error::UnsupportedVersion(v))),
            None => self.log("empty datagram from the gateway".to_owned()),
        }
        self.pump(now);
    }

    /// Retransmits, renews and gives up on requests whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(f) = &self.in_flight
            && now >= f.resend_at
        {
            if f.attempts >= self.config.max_attempts {
                self.give_up(now);
            } else {
                self.send_in_flight(now);
            }
        }
        let mut renewing = Vec::new();
        for m in self.mappings.iter_mut().flatten() {
            if m.state == State::Mapped && m.renew_at.is_some_and(|t| now >= t) {
                m.state = State::NeedMap;
                m.renew_at = None;
                renewing.push((m.protocol, m.local_port));
            }
        }
        for (protocol, port) in renewing {
            self.log(format!(
                "renewing {} mapping of local port {port}",
                protocol.as_str()
            ));
        }
        self.pump(now);
    }

    /// The next datagram to send to the gateway.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`PmpClient::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let resend = self.in_flight.as_ref().map(|f| f.resend_at);
        let renew = self
            .mappings
            .iter()
            .flatten()
            .filter(|m| m.state == State::Mapped)
            .filter_map(|m| m.renew_at)
            .min();
        match (resend, renew) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- helpers ----

    fn log(&mut self, message: String) {
        trace!(%message, "natpmp");
        self.events.push_back(Event::Log {
            transport: self.transport,
            message,
        });
    }

    /// Starts the next job when none is in flight.
    fn pump(&mut self, now: Instant) {
        if self.in_flight.is_some() {
            return;
        }
        let job = self.next_job();
        let Some(job) = job else { return };
        let Some(bytes) = self.encode_job(job) else {
            return;
        };
        self.in_flight = Some(InFlight {
            job,
            transport: self.transport,
            attempts: 0,
            resend_at: now,
            bytes,
        });
        self.send_in_flight(now);
    }

    fn next_job(&self) -> Option<Job> {
        let unmap = self
            .mappings
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.state == State::NeedUnmap));
        if let Some(i) = unmap {
            return Some(Job::Unmap(i));
        }
        if self.want_external && self.transport == Transport::NatPmp {
            return Some(Job::ExternalAddress);
        }
        self.mappings
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.state == State::NeedMap))
            .map(Job::Map)
    }

    fn encode_job(&self, job: Job) -> Option<Vec<u8>> {
        let (index, delete) = match job {
            Job::ExternalAddress => return Some(natpmp::Request::ExternalAddress.encode()),
            Job::Map(i) => (i, false),
            Job::Unmap(i) => (i, true),
        };
        let m = self.mappings.get(index)?.as_ref()?;
        let lifetime = if delete {
            0
        } else {
            u32::try_from(self.config.lifetime.as_secs()).unwrap_or(u32::MAX)
        };
        let suggested = m.external_port.unwrap_or(m.wanted_external);
        Some(match self.transport {
            Transport::Pcp => pcp::MapRequest {
                lifetime,
                client_addr: IpAddr::V4(self.client_addr),
                nonce: m.nonce,
                protocol: m.protocol,
                internal_port: m.local_port,
                suggested_external_port: suggested,
                suggested_external_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            }
            .encode(),
            _ => natpmp::Request::Map {
                protocol: m.protocol,
                internal_port: m.local_port,
                // RFC 6886 section 3.4: 0 when deleting.
                suggested_external_port: if delete { 0 } else { suggested },
                lifetime,
            }
            .encode(),
        })
    }

    fn send_in_flight(&mut self, now: Instant) {
        let Some(f) = self.in_flight.as_mut() else {
            return;
        };
        // RFC 6886 section 3.1: 250 ms, doubling each time.
        let factor = 1u32.checked_shl(f.attempts.min(16)).unwrap_or(u32::MAX);
        let wait = self.config.initial_retransmit.saturating_mul(factor);
        f.attempts = f.attempts.saturating_add(1);
        f.resend_at = crate::later(now, wait);
        self.transmits.push_back(Transmit {
            destination: self.gateway,
            contents: f.bytes.clone(),
        });
    }

    fn give_up(&mut self, now: Instant) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        if f.transport == Transport::Pcp {
            self.fall_back("no answer to PCP");
            return;
        }
        let error = Error::Timeout {
            attempts: f.attempts,
        };
        self.log(format!("gave up: {error}"));
        self.finish_job(now, f.job, Err(error));
    }

    fn fall_back(&mut self, why: &str) {
        debug!(why, "PCP -> NAT-PMP");
        self.log(format!("falling back to NAT-PMP: {why}"));
        self.transport = Transport::NatPmp;
        self.in_flight = None;
    }

    fn check_epoch(&mut self, now: Instant, epoch: u32) {
        // RFC 6886 section 3.6 / RFC 6887 section 8.5: the gateway lost its state when its
        // epoch runs slower than ours (7/8 of our elapsed time, 2 s of slack).
        let lost = match self.epoch {
            Some((prev, at)) => {
                let elapsed = now.saturating_duration_since(at).as_secs();
                let expected = u64::from(prev).saturating_add(elapsed.saturating_mul(7) / 8);
                u64::from(epoch).saturating_add(2) < expected
            }
            None => false,
        };
        self.epoch = Some((epoch, now));
        if lost {
            self.log("gateway epoch went back: re-mapping everything".to_owned());
            self.want_external = self.transport == Transport::NatPmp;
            for m in self.mappings.iter_mut().flatten() {
                if m.state == State::Mapped {
                    m.state = State::NeedMap;
                    m.renew_at = None;
                }
            }
        }
    }

    fn set_external(&mut self, address: IpAddr) {
        if self.external != Some(address) {
            self.external = Some(address);
            self.events.push_back(Event::ExternalIp {
                address,
                transport: self.transport,
            });
        }
    }

    fn on_natpmp(&mut self, now: Instant, resp: natpmp::Response) {
        let Some(f) = &self.in_flight else {
            self.log("unsolicited NAT-PMP reply".to_owned());
            return;
        };
        let job = f.job;
        if f.transport == Transport::Pcp {
            // A NAT-PMP gateway answers PCP with version 0 (RFC 6887 section 9).
            self.fall_back("the gateway answered in NAT-PMP");
            return;
        }
        let matches = match (job, resp) {
            (Job::ExternalAddress, natpmp::Response::ExternalAddress { .. }) => true,
            (Job::ExternalAddress, natpmp::Response::Failure { opcode, .. }) => opcode == 0,
            (
                Job::Map(i) | Job::Unmap(i),
                natpmp::Response::Map {
                    protocol,
                    internal_port,
                    ..
                },
            ) => self
                .mappings
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|m| m.protocol == protocol && m.local_port == internal_port),
            (Job::Map(i) | Job::Unmap(i), natpmp::Response::Failure { opcode, .. }) => self
                .mappings
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|m| opcode == natpmp_opcode(m.protocol)),
            _ => false,
        };
        if !matches {
            self.log("NAT-PMP reply does not match the request".to_owned());
            return;
        }
        self.in_flight = None;
        self.check_epoch(now, resp.epoch());
        let outcome = match resp {
            natpmp::Response::ExternalAddress { address, .. } => {
                Ok(Granted::External(IpAddr::V4(address)))
            }
            natpmp::Response::Map {
                external_port,
                lifetime,
                ..
            } => Ok(Granted::Port {
                external_port,
                lifetime,
                address: None,
            }),
            natpmp::Response::Failure { result, .. } => Err(Error::NatPmpResult(result)),
        };
        self.finish_job(now, job, outcome);
    }

    fn on_pcp(&mut self, now: Instant, resp: pcp::Response) {
        if let pcp::Response::Announce { epoch } = resp {
            self.check_epoch(now, epoch);
            return;
        }
        let Some(f) = &self.in_flight else {
            self.log("unsolicited PCP reply".to_owned());
            return;
        };
        let job = f.job;
        if f.transport != Transport::Pcp {
            self.log("PCP reply while speaking NAT-PMP".to_owned());
            return;
        }
        let (Job::Map(i) | Job::Unmap(i)) = job else {
            return;
        };
        let Some(m) = self.mappings.get(i).and_then(Option::as_ref) else {
            return;
        };
        let nonce = m.nonce;
        let outcome = match resp {
            pcp::Response::Failure {
                result: pcp::PcpResultCode::UnsupportedVersion,
                ..
            } => {
                self.fall_back("the gateway does not speak PCP version 2");
                return;
            }
            pcp::Response::Failure {
                result,
                nonce: n,
                epoch,
                ..
            } => {
                if n.is_some_and(|n| n != nonce) {
                    self.log("PCP reply nonce does not match".to_owned());
                    return;
                }
                self.check_epoch(now, epoch);
                Err(Error::PcpResult(result))
            }
            pcp::Response::Map(r) => {
                if r.nonce != nonce || r.protocol != m.protocol || r.internal_port != m.local_port {
                    self.log("PCP reply does not match the request".to_owned());
                    return;
                }
                self.check_epoch(now, r.epoch);
                Ok(Granted::Port {
                    external_port: r.external_port,
                    lifetime: r.lifetime,
                    address: Some(r.external_addr),
                })
            }
            pcp::Response::Announce { .. } => return,
        };
        self.in_flight = None;
        self.finish_job(now, job, outcome);
    }

    fn finish_job(&mut self, now: Instant, job: Job, outcome: Result<Granted, Error>) {
        let transport = self.transport;
        match job {
            Job::ExternalAddress => {
                self.want_external = false;
                match outcome {
                    Ok(Granted::External(address)) => self.set_external(address),
                    Ok(_) => {}
                    Err(e) => self.log(format!("external address: {e}")),
                }
            }
            Job::Unmap(i) => {
                if let Some(slot) = self.mappings.get_mut(i) {
                    *slot = None;
                }
                if let Err(e) = outcome {
                    self.log(format!("delete failed: {e}"));
                }
                self.events.push_back(Event::Unmapped {
                    index: MappingIndex(i),
                    transport,
                });
            }
            Job::Map(i) => {
                if let Ok(Granted::Port {
                    address: Some(address),
                    ..
                }) = outcome
                    && !address.is_unspecified()
                {
                    self.set_external(address);
                }
                let Some(m) = self.mappings.get_mut(i).and_then(Option::as_mut) else {
                    return;
                };
                if m.state == State::NeedUnmap {
                    // Deleted while the request was in flight: keep what the gateway granted so
                    // the delete names it, and let the unmap job run.
                    if let Ok(Granted::Port { external_port, .. }) = outcome {
                        m.external_port = Some(external_port);
                    }
                    return;
                }
                match outcome {
                    Ok(Granted::Port {
                        external_port,
                        lifetime,
                        ..
                    }) => {
                        let changed = m.external_port != Some(external_port);
                        m.external_port = Some(external_port);
                        m.state = State::Mapped;
                        let half = Duration::from_secs(u64::from(lifetime / 2).max(1));
                        m.renew_at = Some(crate::later(now, half));
                        if changed || !m.reported {
                            m.reported = true;
                            let (protocol, local_port) = (m.protocol, m.local_port);
                            self.events.push_back(Event::Mapped {
                                index: MappingIndex(i),
                                transport,
                                protocol,
                                external_port,
                                local_port,
                            });
                        }
                    }
                    Ok(Granted::External(_)) => {}
                    Err(error) => {
                        m.state = State::Failed;
                        self.events.push_back(Event::MapFailed {
                            index: MappingIndex(i),
                            transport,
                            error,
                        });
                    }
                }
            }
        }
    }
}

enum Granted {
    External(IpAddr),
    Port {
        external_port: u16,
        lifetime: u32,
        address: Option<IpAddr>,
    },
}

fn natpmp_opcode(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Udp => 1,
        Protocol::Tcp => 2,
    }
}

/// Puts `value` in the lowest free slot of `slots` (at most `max` slots).
pub(crate) fn insert_slot<T>(
    slots: &mut Vec<Option<T>>,
    value: T,
    max: usize,
) -> Result<usize, Error> {
    if let Some(i) = slots.iter().position(Option::is_none) {
        slots[i] = Some(value);
        return Ok(i);
    }
    if slots.len() >= max {
        return Err(Error::ApiMisuse("too many mappings"));
    }
    slots.push(Some(value));
    Ok(slots.len() - 1)
}
