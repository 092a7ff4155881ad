//! The UPnP IGD client state machine.
//!
//! [`UpnpClient`] searches for an Internet Gateway Device with SSDP, fetches its description,
//! asks its external address and then adds, renews, looks up and deletes port mappings with
//! SOAP. It does no I/O: SSDP datagrams come out of [`UpnpClient::poll_transmit`] and HTTP
//! exchanges out of [`UpnpClient::poll_http`]; the driver performs each exchange (connect,
//! write the request, read the response with [`crate::http::parse_response`] under a timeout)
//! and hands back the result with [`UpnpClient::handle_http_response`]. One HTTP exchange is
//! outstanding at a time.
//!
//! Conflicts: when the gateway answers 718 (ConflictInMappingEntry) the client tries other
//! external ports (random, from the seeded RNG) up to [`UpnpConfig::max_port_attempts`]
//! times; 725 (OnlyPermanentLeasesSupported) switches to permanent leases; 724
//! (SamePortValuesRequired) and 716 (wildcard port refused) retry with the local port.
//!
//! Driver rule: after any input, drain [`UpnpClient::poll_transmit`] and
//! [`UpnpClient::poll_http`], then [`UpnpClient::poll_event`], then re-arm one timer from
//! [`UpnpClient::poll_timeout`]. Never pass an earlier `now` than before.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::debug;

use crate::error::Error;
use crate::http::{HttpResponse, HttpUrl, get_request};
use crate::igd::{self, Service};
use crate::pmp::insert_slot;
use crate::soap::{self, Action, ActionResponse};
use crate::ssdp::{self, IGD_SEARCH_TARGET, MULTICAST};
use crate::{Event, MappingIndex, Protocol, Transmit, Transport};

/// Settings of an [`UpnpClient`].
#[derive(Debug, Clone)]
pub struct UpnpConfig {
    /// Lease asked for each mapping; renewed at half of it. Default 1 hour. Zero asks for
    /// permanent mappings (not renewed).
    pub lease_duration: Duration,
    /// `NewPortMappingDescription`. Default `"lt"`.
    pub description: String,
    /// M-SEARCH datagrams sent, one per [`UpnpConfig::search_interval`]. Default 3.
    pub search_attempts: u32,
    /// Time between M-SEARCH datagrams, and after the last one before giving up. Default 2 s.
    pub search_interval: Duration,
    /// External ports tried per mapping when the gateway reports conflicts. Default 8.
    pub max_port_attempts: u32,
    /// Most concurrent mappings. Default [`crate::limits::DEFAULT_MAX_MAPPINGS`].
    pub max_mappings: usize,
    /// The internal client address sent in AddPortMapping. Default `None`: the local address
    /// of the connection to the gateway, which the driver reports.
    pub internal_client: Option<IpAddr>,
    /// Seed of the RNG that picks external ports after conflicts. `None` uses a fixed seed;
    /// the driver seeds it from the OS.
    pub rng_seed: Option<[u8; 32]>,
}

impl Default for UpnpConfig {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(3600),
            description: "lt".to_owned(),
            search_attempts: 3,
            search_interval: Duration::from_secs(2),
            max_port_attempts: 8,
            max_mappings: crate::limits::DEFAULT_MAX_MAPPINGS,
            internal_client: None,
            rng_seed: None,
        }
    }
}

/// An HTTP exchange for the driver to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Hand this back with the result.
    pub id: u64,
    /// Where to connect (the gateway's HTTP server).
    pub destination: SocketAddr,
    /// The whole request to write.
    pub request: Vec<u8>,
}

/// Where discovery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Sending M-SEARCH and waiting for a gateway.
    Searching,
    /// Fetching the device description.
    Describing,
    /// A WAN connection service is known.
    Ready,
    /// No usable gateway: every mapping fails with this error.
    Failed(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NeedMap,
    Mapped,
    NeedUnmap,
    Failed,
}

#[derive(Debug, Clone)]
struct Mapping {
    protocol: Protocol,
    local_port: u16,
    /// The external port to ask for next.
    try_port: u16,
    /// The external port the gateway granted.
    external_port: Option<u16>,
    state: State,
    renew_at: Option<Instant>,
    attempts: u32,
    reported: bool,
    lookup: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Describe,
    ExternalIp,
    Map(usize),
    Unmap(usize),
    Lookup(usize),
}

#[derive(Debug, Clone)]
struct Outstanding {
    id: u64,
    job: Job,
    action: Option<Action>,
}

/// A UPnP IGD client. See the module docs for the driver rule.
#[derive(Debug)]
pub struct UpnpClient {
    config: UpnpConfig,
    status: Status,
    searches_sent: u32,
    search_at: Option<Instant>,
    location: Option<HttpUrl>,
    service: Option<Service>,
    model: Option<String>,
    local_addr: Option<IpAddr>,
    want_external: bool,
    external: Option<IpAddr>,
    permanent_only: bool,
    mappings: Vec<Option<Mapping>>,
    outstanding: Option<Outstanding>,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    http: VecDeque<HttpRequest>,
    events: VecDeque<Event>,
    rng: ChaCha8Rng,
}

impl UpnpClient {
    /// Starts searching: the first M-SEARCH is ready in [`UpnpClient::poll_transmit`].
    #[must_use]
    pub fn new(config: UpnpConfig, now: Instant) -> Self {
        let rng = ChaCha8Rng::from_seed(config.rng_seed.unwrap_or([0x55; 32]));
        let mut client = Self {
            config,
            status: Status::Searching,
            searches_sent: 0,
            search_at: Some(now),
            location: None,
            service: None,
            model: None,
            local_addr: None,
            want_external: true,
            external: None,
            permanent_only: false,
            mappings: Vec::new(),
            outstanding: None,
            next_id: 0,
            transmits: VecDeque::new(),
            http: VecDeque::new(),
            events: VecDeque::new(),
            rng,
        };
        client.handle_timeout(now);
        client
    }

    /// Where discovery stands.
    #[must_use]
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The gateway's model name from its description (libtorrent's router model).
    #[must_use]
    pub fn router_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The device description URL of the gateway in use.
    #[must_use]
    pub fn location(&self) -> Option<&HttpUrl> {
        self.location.as_ref()
    }

    /// The external address last reported by the gateway.
    #[must_use]
    pub fn external_address(&self) -> Option<IpAddr> {
        self.external
    }

    /// Asks for `external_port` (0 = the local port) to be forwarded to `local_port` of this
    /// host. Mappings added before the gateway is found wait for it.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when [`UpnpConfig::max_mappings`] mappings exist.
    pub fn add_mapping(
        &mut self,
        now: Instant,
        protocol: Protocol,
        external_port: u16,
        local_port: u16,
    ) -> Result<MappingIndex, Error> {
        let mapping = Mapping {
            protocol,
            local_port,
            try_port: if external_port == 0 {
                local_port
            } else {
                external_port
            },
            external_port: None,
            state: State::NeedMap,
            renew_at: None,
            attempts: 0,
            reported: false,
            lookup: false,
        };
        let index = insert_slot(&mut self.mappings, mapping, self.config.max_mappings)?;
        if let Status::Failed(error) = &self.status {
            let error = error.clone();
            self.fail_mapping(index, error);
        }
        self.pump(now);
        Ok(MappingIndex(index))
    }

    /// Deletes a mapping from the gateway; [`Event::Unmapped`] follows.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for an unknown index.
    pub fn delete_mapping(&mut self, now: Instant, index: MappingIndex) -> Result<(), Error> {
        let busy = self.busy_with(index.0);
        let slot = self
            .mappings
            .get_mut(index.0)
            .ok_or(Error::ApiMisuse("unknown mapping index"))?;
        let mapping = slot
            .as_mut()
            .ok_or(Error::ApiMisuse("unknown mapping index"))?;
        if mapping.external_port.is_some() || busy {
            mapping.state = State::NeedUnmap;
        } else {
            *slot = None;
            self.events.push_back(Event::Unmapped {
                index,
                transport: Transport::Upnp,
            });
        }
        self.pump(now);
        Ok(())
    }

    /// Asks the gateway for its entry of a mapping (GetSpecificPortMappingEntry); the answer
    /// comes as [`Event::MappingEntry`].
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for an unknown index or one not mapped yet.
    pub fn lookup_mapping(&mut self, now: Instant, index: MappingIndex) -> Result<(), Error> {
        let mapping = self
            .mappings
            .get_mut(index.0)
            .and_then(Option::as_mut)
            .ok_or(Error::ApiMisuse("unknown mapping index"))?;
        if mapping.external_port.is_none() {
            return Err(Error::ApiMisuse("mapping not made yet"));
        }
        mapping.lookup = true;
        self.pump(now);
        Ok(())
    }

    /// Searches for a gateway again (after a network change, or after [`Status::Failed`]):
    /// forgets the current gateway, and re-adds every mapping that is not being deleted once
    /// a gateway is found. An HTTP exchange still outstanding is ignored when it completes.
    pub fn rediscover(&mut self, now: Instant) {
        self.log("searching for a gateway again".to_owned());
        self.status = Status::Searching;
        self.searches_sent = 0;
        self.search_at = Some(now);
        self.location = None;
        self.service = None;
        self.model = None;
        self.local_addr = None;
        self.want_external = true;
        self.permanent_only = false;
        self.outstanding = None;
        for i in 0..self.mappings.len() {
            let Some(m) = self.mappings[i].as_mut() else {
                continue;
            };
            if m.state == State::NeedUnmap {
                // The old gateway's mapping expires with its lease.
                self.mappings[i] = None;
                self.events.push_back(Event::Unmapped {
                    index: MappingIndex(i),
                    transport: Transport::Upnp,
                });
            } else {
                m.state = State::NeedMap;
                m.external_port = None;
                m.renew_at = None;
                m.attempts = 0;
                m.lookup = false;
            }
        }
        self.handle_timeout(now);
    }

    /// Whether any mapping (or delete request) is still held.
    #[must_use]
    pub fn has_mappings(&self) -> bool {
        self.mappings.iter().any(Option::is_some)
    }

    /// Feeds an SSDP datagram received on the search socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        if self.status != Status::Searching {
            return;
        }
        match ssdp::parse_response(from, buf) {
            Ok(resp) if resp.is_igd() => {
                self.log(format!(
                    "found gateway {} ({})",
                    resp.location,
                    resp.server.as_deref().unwrap_or("no SERVER header")
                ));
                self.status = Status::Describing;
                self.search_at = None;
                self.location = Some(resp.location);
            }
            Ok(resp) => self.log(format!("ignored SSDP answer for {}", resp.search_target)),
            Err(e) => {
                debug!(%from, error = %e, "bad SSDP response");
                self.log(format!("refused SSDP response from {from}: {e}"));
            }
        }
        self.pump(now);
    }

    /// Feeds the outcome of the HTTP exchange `id`. `local_addr` is this host's address on
    /// the connection (it becomes the internal client of mappings unless configured).
    pub fn handle_http_response(
        &mut self,
        now: Instant,
        id: u64,
        local_addr: Option<IpAddr>,
        result: Result<HttpResponse, Error>,
    ) {
        let Some(out) = self.outstanding.take_if(|o| o.id == id) else {
            debug!(id, "HTTP result for no outstanding request");
            return;
        };
        if self.local_addr.is_none() {
            self.local_addr = local_addr;
        }
        match out.job {
            Job::Describe => self.on_description(result),
            job => {
                let parsed = match (&out.action, result) {
                    (Some(action), Ok(resp)) => action.parse_response(&resp),
                    (_, Err(e)) => Err(e),
                    (None, Ok(_)) => Err(Error::ApiMisuse("no action")),
                };
                self.on_action(now, job, parsed);
            }
        }
        self.pump(now);
    }

    /// Sends the next M-SEARCH, gives up searching, and renews mappings, as due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.status == Status::Searching && self.search_at.is_some_and(|t| now >= t) {
            if self.searches_sent >= self.config.search_attempts {
                self.log("no gateway answered the SSDP search".to_owned());
                self.fail_all(Error::NoGateway);
            } else {
                self.searches_sent += 1;
                self.transmits.push_back(Transmit {
                    destination: MULTICAST,
                    contents: ssdp::m_search(IGD_SEARCH_TARGET, 2),
                });
                self.search_at = Some(crate::later(now, self.config.search_interval));
            }
        }
        let mut renewing = Vec::new();
        for m in self.mappings.iter_mut().flatten() {
            if m.state == State::Mapped && m.renew_at.is_some_and(|t| now >= t) {
                m.state = State::NeedMap;
                m.renew_at = None;
                renewing.push((m.protocol, m.try_port));
            }
        }
        for (protocol, port) in renewing {
            self.log(format!(
                "renewing {} mapping of external port {port}",
                protocol.as_str()
            ));
        }
        self.pump(now);
    }

    /// The next SSDP datagram to send (from the search socket).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next HTTP exchange to perform.
    #[must_use]
    pub fn poll_http(&mut self) -> Option<HttpRequest> {
        self.http.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`UpnpClient::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let renew = self
            .mappings
            .iter()
            .flatten()
            .filter(|m| m.state == State::Mapped)
            .filter_map(|m| m.renew_at)
            .min();
        match (self.search_at, renew) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- helpers ----

    fn log(&mut self, message: String) {
        debug!(%message, "upnp");
        self.events.push_back(Event::Log {
            transport: Transport::Upnp,
            message,
        });
    }

    fn busy_with(&self, index: usize) -> bool {
        matches!(
            self.outstanding.as_ref().map(|o| o.job),
            Some(Job::Map(i) | Job::Unmap(i) | Job::Lookup(i)) if i == index
        )
    }

    fn fail_mapping(&mut self, index: usize, error: Error) {
        if let Some(m) = self.mappings.get_mut(index).and_then(Option::as_mut) {
            m.state = State::Failed;
            self.events.push_back(Event::MapFailed {
                index: MappingIndex(index),
                transport: Transport::Upnp,
                error,
            });
        }
    }

    fn fail_all(&mut self, error: Error) {
        self.status = Status::Failed(error.clone());
        self.search_at = None;
        for i in 0..self.mappings.len() {
            match self.mappings[i].as_ref().map(|m| m.state) {
                Some(State::NeedUnmap) => {
                    self.mappings[i] = None;
                    self.events.push_back(Event::Unmapped {
                        index: MappingIndex(i),
                        transport: Transport::Upnp,
                    });
                }
                Some(State::NeedMap | State::Mapped) => self.fail_mapping(i, error.clone()),
                _ => {}
            }
        }
    }

    fn next_job(&self) -> Option<Job> {
        match self.status {
            Status::Describing if self.location.is_some() => return Some(Job::Describe),
            Status::Ready => {}
            _ => return None,
        }
        let find = |pred: &dyn Fn(&Mapping) -> bool| {
            self.mappings
                .iter()
                .position(|m| m.as_ref().is_some_and(pred))
        };
        if let Some(i) = find(&|m| m.state == State::NeedUnmap) {
            return Some(Job::Unmap(i));
        }
        if self.want_external {
            return Some(Job::ExternalIp);
        }
        if let Some(i) = find(&|m| m.state == State::NeedMap) {
            return Some(Job::Map(i));
        }
        find(&|m| m.lookup && m.external_port.is_some()).map(Job::Lookup)
    }

    fn pump(&mut self, now: Instant) {
        let _ = now;
        while self.outstanding.is_none() {
            let Some(job) = self.next_job() else { return };
            let (destination, request, action) = match job {
                Job::Describe => {
                    let Some(location) = &self.location else {
                        return;
                    };
                    (location.socket_addr(), get_request(location), None)
                }
                _ => {
                    let Some(action) = self.action_for(job) else {
                        self.drop_job(job);
                        continue;
                    };
                    let Some(service) = &self.service else { return };
                    (
                        service.control_url.socket_addr(),
                        action.request(&service.control_url, &service.service_type),
                        Some(action),
                    )
                }
            };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.outstanding = Some(Outstanding { id, job, action });
            self.http.push_back(HttpRequest {
                id,
                destination,
                request,
            });
        }
    }

    fn action_for(&self, job: Job) -> Option<Action> {
        let i = match job {
            Job::Describe => return None,
            Job::ExternalIp => return Some(Action::GetExternalIpAddress),
            Job::Map(i) | Job::Unmap(i) | Job::Lookup(i) => i,
        };
        let m = self.mappings.get(i)?.as_ref()?;
        Some(match job {
            Job::Map(_) => Action::AddPortMapping {
                external_port: m.try_port,
                protocol: m.protocol,
                internal_port: m.local_port,
                internal_client: self.config.internal_client.or(self.local_addr)?,
                description: self.config.description.clone(),
                lease_duration: if self.permanent_only {
                    0
                } else {
                    u32::try_from(self.config.lease_duration.as_secs()).unwrap_or(u32::MAX)
                },
            },
            Job::Unmap(_) => Action::DeletePortMapping {
                external_port: m.external_port?,
                protocol: m.protocol,
            },
            _ => Action::GetSpecificPortMappingEntry {
                external_port: m.external_port?,
                protocol: m.protocol,
            },
        })
    }

    /// A job that cannot be expressed as an action: settle it so it is not picked again.
    fn drop_job(&mut self, job: Job) {
        match job {
            Job::Map(i) => self.fail_mapping(i, Error::ApiMisuse("no local address")),
            Job::Unmap(i) => {
                if let Some(slot) = self.mappings.get_mut(i) {
                    *slot = None;
                }
                self.events.push_back(Event::Unmapped {
                    index: MappingIndex(i),
                    transport: Transport::Upnp,
                });
            }
            Job::Lookup(i) => {
                if let Some(m) = self.mappings.get_mut(i).and_then(Option::as_mut) {
                    m.lookup = false;
                }
            }
            Job::Describe | Job::ExternalIp => {}
        }
    }

    fn on_description(&mut self, result: Result<HttpResponse, Error>) {
        let parsed = result.and_then(|resp| {
            if resp.status != 200 {
                return Err(Error::HttpStatus(resp.status));
            }
            let location = self.location.as_ref().ok_or(Error::NoGateway)?;
            igd::parse_description(&resp.body, location)
        });
        match parsed {
            Ok(desc) => {
                self.log(format!(
                    "using {} at {} (model {})",
                    desc.service.service_type,
                    desc.service.control_url,
                    desc.model_name.as_deref().unwrap_or("unknown")
                ));
                self.model = desc.model_name.or(desc.friendly_name);
                self.service = Some(desc.service);
                self.status = Status::Ready;
                if self.config.internal_client.is_none() && self.local_addr.is_none() {
                    self.log("no local address for AddPortMapping".to_owned());
                    self.fail_all(Error::ApiMisuse("no local address"));
                }
            }
            Err(e) => {
                self.log(format!("device description: {e}"));
                self.fail_all(e);
            }
        }
    }

    fn on_action(&mut self, now: Instant, job: Job, result: Result<ActionResponse, Error>) {
        match job {
            Job::Describe => {}
            Job::ExternalIp => {
                self.want_external = false;
                match result {
                    Ok(ActionResponse::ExternalIpAddress(Some(address))) => {
                        if self.external != Some(address) {
                            self.external = Some(address);
                            self.events.push_back(Event::ExternalIp {
                                address,
                                transport: Transport::Upnp,
                            });
                        }
                    }
                    Ok(_) => self.log("gateway reports no external address".to_owned()),
                    Err(e) => self.log(format!("GetExternalIPAddress: {e}")),
                }
            }
            Job::Unmap(i) => {
                if let Err(e) = result {
                    self.log(format!("DeletePortMapping: {e}"));
                }
                if let Some(slot) = self.mappings.get_mut(i) {
                    *slot = None;
                }
                self.events.push_back(Event::Unmapped {
                    index: MappingIndex(i),
                    transport: Transport::Upnp,
                });
            }
            Job::Lookup(i) => {
                let Some(m) = self.mappings.get_mut(i).and_then(Option::as_mut) else {
                    return;
                };
                m.lookup = false;
                let entry = match result {
                    Ok(ActionResponse::Entry(entry)) => Ok(entry),
                    Ok(_) => Err(Error::MissingElement("GetSpecificPortMappingEntryResponse")),
                    Err(e) => Err(e),
                };
                self.events.push_back(Event::MappingEntry {
                    index: MappingIndex(i),
                    entry,
                });
            }
            Job::Map(i) => self.on_added(now, i, result),
        }
    }

    fn on_added(&mut self, now: Instant, i: usize, result: Result<ActionResponse, Error>) {
        let lease = self.config.lease_duration;
        let permanent = self.permanent_only;
        let Some(m) = self.mappings.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if m.state == State::NeedUnmap {
            if result.is_ok() {
                m.external_port = Some(m.try_port);
            } else if m.external_port.is_none() {
                self.mappings[i] = None;
                self.events.push_back(Event::Unmapped {
                    index: MappingIndex(i),
                    transport: Transport::Upnp,
                });
            }
            return;
        }
        match result {
            Ok(_) => {
                let changed = m.external_port != Some(m.try_port);
                m.external_port = Some(m.try_port);
                m.state = State::Mapped;
                m.attempts = 0;
                m.renew_at = (!permanent && !lease.is_zero()).then(|| crate::later(now, lease / 2));
                if changed || !m.reported {
                    m.reported = true;
                    let event = Event::Mapped {
                        index: MappingIndex(i),
                        transport: Transport::Upnp,
                        protocol: m.protocol,
                        external_port: m.try_port,
                        local_port: m.local_port,
                    };
                    self.events.push_back(event);
                }
            }
            Err(Error::SoapFault { code }) if code == soap::ONLY_PERMANENT_LEASES_SUPPORTED => {
                self.permanent_only = true;
                self.log("gateway supports only permanent leases".to_owned());
            }
            Err(Error::SoapFault { code })
                if (code == soap::SAME_PORT_VALUES_REQUIRED
                    || code == soap::WILDCARD_NOT_PERMITTED_IN_EXT_PORT)
                    && m.try_port != m.local_port =>
            {
                m.try_port = m.local_port;
            }
            Err(Error::SoapFault { code }) if code == soap::CONFLICT_IN_MAPPING_ENTRY => {
                m.attempts += 1;
                if m.attempts >= self.config.max_port_attempts {
                    self.fail_mapping(i, Error::PortConflict);
                } else {
                    // Ports 1025..=65535, from the seeded RNG.
                    let span = u32::from(u16::MAX - 1024);
                    let pick = self.rng.next_u32() % span;
                    let port = u16::try_from(pick).map_or(u16::MAX, |p| p.saturating_add(1025));
                    m.try_port = port;
                    m.external_port = None;
                    let message = format!("external port taken; trying {port}");
                    self.log(message);
                }
            }
            Err(error) => self.fail_mapping(i, error),
        }
    }
}
