//! The engine loop: driver events in, the engine's actions carried out.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use lt_core::{InfoHash, Sha1Hash};
use lt_engine::{
    Action, Alert, ConnId, DiskDone, DiskError, DiskErrorKind, DiskJob, Engine, Handshake, Input,
    IoError, TorrentId, Transport,
};
use lt_metainfo::TorrentInfo;
use lt_storage::{FsStorage, TorrentStore};
use lt_tracker::{AnnounceRequest, TrackerIndex};
use tokio::sync::mpsc;

use crate::Shared;
use crate::disk::{self, DiskCtx, DiskOutput, TorrentIo};
use crate::io;
use crate::tracker;
use crate::web;

/// What reaches the engine loop: events for the engine as they are, and the few that
/// carry a socket or writer the loop keeps before the engine hears of them.
pub(crate) enum Event {
    /// An event for the engine.
    Engine(Input),
    /// A dialled connection is up: the loop keeps its writer, then tells the engine.
    Connected {
        conn: ConnId,
        writer: io::Writer,
        transport: Transport,
        handshake: Handshake,
    },
    /// An accepted connection got past its first bytes (and MSE); the engine decides
    /// whether to keep it.
    Incoming {
        addr: SocketAddr,
        stream: io::PeerStream,
        handshake: Handshake,
    },
    /// An alert from the shell (DHT, port mapping).
    Alert(Alert),
    /// The proxy changed ([`crate::Session::set_proxy`]): the HTTP clients are made again.
    ProxyChanged,
    /// A disk job finished.
    Disk(lt_storage::Completion<DiskCtx>),
}

/// The engine loop: driver events in, the engine's actions out, until the channel closes.
pub(crate) async fn engine_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Event>,
    tx: mpsc::Sender<Event>,
    dialer: io::Dialer,
) {
    let max_unwritten = io::max_unwritten(shared.engine().settings().send_buffer_watermark);
    let mut driver = Driver {
        shared,
        tx,
        dialer,
        http: None,
        web_http: None,
        udp_trackers: tracker::UdpRoute::Direct,
        trackers_refused: false,
        tracker_proxy: None,
        web_tasks: HashMap::new(),
        disk_backlog: VecDeque::new(),
        writers: HashMap::new(),
        tasks: HashMap::new(),
        served: Vec::new(),
        not_reading: Vec::new(),
        max_unwritten,
    };
    {
        let shared = Arc::clone(&driver.shared);
        let engine = shared.engine();
        driver.route(&engine);
    }
    let mut batch: Vec<Event> = Vec::with_capacity(256);
    let mut actions: Vec<Action> = Vec::new();
    loop {
        let deadline = driver.shared.engine().poll_timeout();
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { return };
                batch.push(input);
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(i) => batch.push(i),
                        Err(_) => break,
                    }
                }
            }
            () = driver.shared.wake.notified() => {}
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = std::future::ready(()),
                if !driver.served.is_empty() || !driver.not_reading.is_empty() => {}
        }
        driver.step(&mut batch, &mut actions);
        for action in actions.drain(..) {
            driver.act(action);
        }
    }
}

/// What the engine loop keeps: the sockets' writers and tasks, and the clients it runs
/// the engine's actions with. It decides nothing; every decision is the engine's.
struct Driver {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Event>,
    dialer: io::Dialer,
    /// The trackers' client; none when the proxy settings cannot be made into one.
    http: Option<reqwest::Client>,
    /// The web seeds' client (keep-alive, no compression); none as `http`.
    web_http: Option<reqwest::Client>,
    /// Anonymous mode without a proxy for trackers: no tracker is asked.
    trackers_refused: bool,
    /// The proxy trackers are asked through, to name in their errors.
    tracker_proxy: Option<String>,
    /// How UDP trackers are reached (through a SOCKS5 proxy's relay, or not at all
    /// behind another proxy).
    udp_trackers: tracker::UdpRoute,
    /// Each web seed's requests in flight.
    web_tasks: HashMap<ConnId, Vec<(u64, tokio::task::AbortHandle)>>,
    /// Disk jobs the full queue handed back, submitted again as jobs finish.
    disk_backlog: VecDeque<(Arc<TorrentStore>, lt_storage::Job, DiskCtx)>,
    writers: HashMap<ConnId, io::Writer>,
    tasks: HashMap<ConnId, tokio::task::AbortHandle>,
    /// Reads served from the read cache, handed in at the next step.
    served: Vec<DiskDone>,
    /// Connections closed because their peer does not read what it is sent, for the engine
    /// at the next step.
    not_reading: Vec<(ConnId, usize)>,
    /// Most that may wait in a writer ([`io::max_unwritten`] of the engine's send buffer
    /// watermark, kept up to date at each step).
    max_unwritten: usize,
}

impl Driver {
    /// Makes the tracker and web seed clients for the session's proxy (through it, or
    /// direct when there is none). The proxy was checked when it was set; should a client
    /// still fail to build, there is none, and nothing is fetched rather than fetched
    /// around the proxy.
    fn route(&mut self, engine: &Engine) {
        let proxy = self.shared.proxy();
        let s = engine.settings();
        self.http =
            tracker::http_client(&s.user_agent, s.tracker_completion_timeout, proxy.as_ref()).ok();
        self.web_http = web::client(&s.user_agent, s.urlseed_timeout, proxy.as_ref()).ok();
        self.trackers_refused =
            self.shared.anonymous && !proxy.as_ref().is_some_and(|p| p.proxy_tracker_connections);
        self.tracker_proxy = proxy
            .as_ref()
            .filter(|p| p.proxy_tracker_connections)
            .map(crate::ProxySettings::label);
        self.udp_trackers = match proxy.filter(|p| p.proxy_tracker_connections) {
            None => tracker::UdpRoute::Direct,
            Some(p) if p.kind == crate::ProxyKind::Socks5 => tracker::UdpRoute::Relay(p),
            Some(_) => tracker::UdpRoute::Refused,
        };
    }

    /// Hands a batch of events (and the timer, when due) to the engine, one at a time, and
    /// carries out what the engine asks for after each; what the timer asks for is left in
    /// `actions`. One event at a time bounds what waits in the engine's action queue by what
    /// one event can cause: a 64 KiB read of a peer that toggles its interest makes 13,000
    /// messages to send, which must reach the writer (and its [`io::max_unwritten`]) before
    /// the next read is looked at, not after a whole batch of them.
    fn step(&mut self, batch: &mut Vec<Event>, actions: &mut Vec<Action>) {
        self.retry_disk();
        let shared = Arc::clone(&self.shared);
        for event in batch.drain(..) {
            {
                let mut engine = shared.engine();
                let now = Instant::now();
                self.own_inputs(&mut engine, now);
                self.hand_over(&mut engine, now, event);
                while let Some(a) = engine.poll_action() {
                    actions.push(a);
                }
                // Before the engine is let go: whoever reads its status next sees the
                // alerts of what led to it.
                shared.push_alerts(&mut engine);
            }
            for action in actions.drain(..) {
                self.act(action);
            }
        }
        let mut engine = shared.engine();
        let now = Instant::now();
        self.own_inputs(&mut engine, now);
        if engine.poll_timeout() <= now {
            let _ = engine.handle_input(now, Input::Timeout);
        }
        while let Some(a) = engine.poll_action() {
            actions.push(a);
        }
        shared.push_alerts(&mut engine);
    }

    /// Hands the engine what the driver found itself: reads served from the cache, and
    /// connections closed because their peer does not read.
    fn own_inputs(&mut self, engine: &mut Engine, now: Instant) {
        self.max_unwritten = io::max_unwritten(engine.settings().send_buffer_watermark);
        for done in self.served.drain(..) {
            let _ = engine.handle_input(now, Input::Disk(done));
        }
        for (conn, unwritten) in self.not_reading.drain(..) {
            tracing::debug!(%conn, unwritten, "the peer does not read what it is sent; closed");
            let error = IoError::new(
                std::io::ErrorKind::Other,
                format!("the peer does not read: {unwritten} bytes wait to be written"),
            );
            let closed = Input::Closed {
                conn,
                error: Some(error),
            };
            let _ = engine.handle_input(now, closed);
        }
    }

    /// Hands one event to the engine, keeping the socket or writer it carries.
    fn hand_over(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        match event {
            Event::Connected {
                conn,
                writer,
                transport,
                handshake,
            } => {
                self.writers.insert(conn, writer);
                let connected = Input::Connected {
                    conn,
                    transport,
                    handshake,
                };
                let _ = engine.handle_input(now, connected);
            }
            Event::Incoming {
                addr,
                stream,
                handshake,
            } => {
                let incoming = Input::Incoming {
                    addr,
                    transport: stream.transport(),
                    handshake,
                };
                // A refused connection is dropped here, which closes it.
                if let Some(conn) = engine.handle_input(now, incoming) {
                    let (writer, reader) = stream.start(conn, &self.tx);
                    self.writers.insert(conn, writer);
                    let t = tokio::spawn(reader);
                    self.tasks.insert(conn, t.abort_handle());
                }
            }
            Event::Engine(input) => {
                if let Input::WebDone { seed, request, .. } = &input
                    && let Some(tasks) = self.web_tasks.get_mut(seed)
                {
                    tasks.retain(|(r, _)| r != request);
                    if tasks.is_empty() {
                        self.web_tasks.remove(seed);
                    }
                }
                if let Input::ConnectFailed { conn, .. }
                | Input::HandshakeFailed { conn, .. }
                | Input::Closed { conn, .. } = &input
                {
                    if let Some(w) = self.writers.remove(conn) {
                        w.close();
                    }
                    self.tasks.remove(conn);
                }
                let _ = engine.handle_input(now, input);
            }
            Event::Alert(a) => engine.post_alert(a),
            Event::ProxyChanged => self.route(engine),
            Event::Disk(done) => match disk::report(done) {
                DiskOutput::Done(d) => {
                    let _ = engine.handle_input(now, Input::Disk(d));
                }
                DiskOutput::Alert(a) => engine.post_alert(a),
                DiskOutput::AlertAndDone(a, d) => {
                    engine.post_alert(a);
                    let _ = engine.handle_input(now, Input::Disk(d));
                }
                DiskOutput::Nothing => {}
            },
        }
    }

    /// Carries out one action: one method per kind.
    fn act(&mut self, action: Action) {
        match action {
            Action::Send { conn, bufs } => self.send(conn, bufs),
            Action::Close { conn } => self.close(conn),
            Action::Connect {
                conn,
                addr,
                transport,
                info_hash,
                encrypt,
                ssl,
                race_tcp_after,
            } => self.connect(io::DialRequest {
                conn,
                addr,
                transport,
                info_hash,
                encrypt,
                ssl,
                race_tcp_after,
            }),
            Action::Disk(job) => self.disk(job),
            Action::Announce {
                torrent,
                tracker,
                url,
                request,
            } => self.announce(torrent, tracker, url, request),
            Action::Scrape {
                torrent,
                tracker,
                url,
                info_hash,
            } => self.scrape(torrent, tracker, url, info_hash),
            Action::MetadataReceived { torrent, info } => self.metadata_received(torrent, info),
            Action::DhtAnnounce {
                torrent,
                info_hash,
                seed,
                port,
            } => self.dht_announce(torrent, info_hash, seed, port),
            Action::LsdAnnounce { info_hashes, port } => self.lsd_announce(info_hashes, port),
            Action::DhtNode { addr } => self.dht_node(addr),
            Action::RemoveStorage {
                torrent,
                delete_files,
                info_hash,
            } => self.remove_storage(torrent, delete_files, info_hash),
            Action::WebRequest(req) => self.web_request(req),
            Action::WebCancel { seed } => {
                for (_, task) in self.web_tasks.remove(&seed).unwrap_or_default() {
                    task.abort();
                }
            }
        }
    }

    /// Runs a web seed request in its own task.
    fn web_request(&mut self, req: lt_engine::web::WebRequest) {
        let (timeout, filter) = {
            let e = self.shared.engine();
            (
                e.settings().urlseed_timeout,
                Arc::new(e.ip_filter().clone()),
            )
        };
        let (seed, request) = (req.seed, req.request);
        let via = self.shared.proxy().map(|p| p.label());
        let task = tokio::spawn(web::fetch(
            self.web_http.clone(),
            req,
            timeout,
            filter,
            via,
            self.tx.clone(),
        ));
        self.web_tasks
            .entry(seed)
            .or_default()
            .push((request, task.abort_handle()));
    }

    /// Hands `bufs` to the connection's writer; a peer with [`io::max_unwritten`] waiting
    /// already does not read, and its connection is closed (the engine hears of it before
    /// the next event).
    fn send(&mut self, conn: ConnId, bufs: Vec<Bytes>) {
        let Some(w) = self.writers.get(&conn) else {
            return;
        };
        if let Err(e) = w.send(bufs, self.max_unwritten) {
            if let Some(w) = self.writers.remove(&conn) {
                w.abort();
            }
            if let Some(t) = self.tasks.remove(&conn) {
                t.abort();
            }
            self.not_reading.push((conn, e.unwritten));
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(w) = self.writers.remove(&conn) {
            w.close();
        }
        if let Some(t) = self.tasks.remove(&conn) {
            t.abort();
        }
    }

    fn connect(&mut self, req: io::DialRequest) {
        let mut dialer = self.dialer.clone();
        dialer.config = self.shared.engine().mse_config();
        let conn = req.conn;
        let t = tokio::spawn(io::connect(req, dialer, self.tx.clone()));
        self.tasks.insert(conn, t.abort_handle());
    }

    fn disk(&mut self, mut job: DiskJob) {
        let torrent = job.torrent();
        let Some((store, allocation)) = self
            .shared
            .torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&torrent)
            .map(|io| (Arc::clone(&io.store), io.options.allocation))
        else {
            return;
        };
        // The storage's allocation goes into the resume data (the engine has no storage).
        if let DiskJob::SaveResume { data, .. } = &mut job {
            data.allocation = allocation;
        }
        // Blocks of cached pieces are served here, without a disk job.
        if let DiskJob::Read {
            torrent,
            conn,
            request,
        } = &job
            && let Some(data) = store.cached_block(request.piece, request.begin, request.len)
        {
            self.served.push(DiskDone::Read {
                torrent: *torrent,
                conn: *conn,
                request: *request,
                result: Ok(data),
            });
            return;
        }
        let (job, ctx) = disk::job(job);
        self.submit_disk(store, job, ctx);
    }

    /// Queues a disk job, behind any the full queue handed back before.
    fn submit_disk(&mut self, store: Arc<TorrentStore>, job: lt_storage::Job, ctx: DiskCtx) {
        if !self.disk_backlog.is_empty() {
            self.disk_backlog.push_back((store, job, ctx));
            return;
        }
        if let Err(lt_storage::SubmitError::Full(store, job, ctx)) =
            self.shared.disk.try_submit(store, job, ctx)
        {
            self.disk_backlog.push_back((store, job, ctx));
        }
    }

    /// Submits the jobs the full queue handed back, in order, while it takes them.
    fn retry_disk(&mut self) {
        while let Some((store, job, ctx)) = self.disk_backlog.pop_front() {
            if let Err(lt_storage::SubmitError::Full(store, job, ctx)) =
                self.shared.disk.try_submit(store, job, ctx)
            {
                self.disk_backlog.push_front((store, job, ctx));
                return;
            }
        }
    }

    fn announce(
        &self,
        torrent: TorrentId,
        tracker: TrackerIndex,
        url: String,
        request: AnnounceRequest,
    ) {
        let tx = self.tx.clone();
        let http = self.http.clone().filter(|_| !self.trackers_refused);
        let refused = self.trackers_refused;
        let via = self.tracker_proxy.clone();
        let udp = self.udp_trackers.clone();
        let timeout = self.shared.engine().settings().tracker_completion_timeout;
        tokio::spawn(async move {
            let result = match http {
                Some(http) => tracker::announce(&http, &url, &request, timeout, &udp).await,
                None if refused => Err(tracker::anonymous_refused()),
                None => Err(tracker::unusable()),
            }
            .map_err(|e| tracker::through(e, via.as_deref()));
            let announced = Input::Announced {
                torrent,
                tracker,
                result,
            };
            let _ = tx.send(Event::Engine(announced)).await;
        });
    }

    fn scrape(&self, torrent: TorrentId, tracker: TrackerIndex, url: String, info_hash: Sha1Hash) {
        let tx = self.tx.clone();
        let http = self.http.clone().filter(|_| !self.trackers_refused);
        let refused = self.trackers_refused;
        let via = self.tracker_proxy.clone();
        let udp = self.udp_trackers.clone();
        let timeout = self.shared.engine().settings().tracker_completion_timeout;
        tokio::spawn(async move {
            let result = match http {
                Some(http) => tracker::scrape(&http, &url, info_hash, timeout, &udp).await,
                None if refused => Err(tracker::anonymous_refused()),
                None => Err(tracker::unusable()),
            }
            .map_err(|e| tracker::through(e, via.as_deref()));
            let scraped = Input::Scraped {
                torrent,
                tracker,
                result,
            };
            let _ = tx.send(Event::Engine(scraped)).await;
        });
    }

    /// A magnet's metadata arrived: the torrent's storage is made for its files.
    fn metadata_received(&self, torrent: TorrentId, info: Arc<TorrentInfo>) {
        let shared = &self.shared;
        let old = shared
            .torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&torrent)
            .cloned();
        let Some(old) = old else { return };
        let path = old.store.save_path();
        match FsStorage::new(info.files().clone(), &path, old.options.clone()) {
            Ok(storage) => {
                let io = Arc::new(TorrentIo {
                    store: Arc::new(TorrentStore::with_cache(
                        Box::new(storage),
                        info,
                        path,
                        Arc::clone(&shared.read_cache),
                    )),
                    options: old.options.clone(),
                });
                shared
                    .torrents
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(torrent, io);
            }
            Err(e) => {
                let mut engine = shared.engine();
                engine.post_alert(Alert::FileError {
                    torrent,
                    error: DiskError::new(DiskErrorKind::Other, e.to_string()),
                });
                shared.push_alerts(&mut engine);
            }
        }
    }

    /// Runs a DHT announce; what it finds (nothing, without a node) goes back to the engine.
    fn dht_announce(&self, torrent: TorrentId, info_hash: Sha1Hash, seed: bool, port: u16) {
        let tx = self.tx.clone();
        let dht = self.shared.dht();
        tokio::spawn(async move {
            let peers = match dht {
                Some(dht) => dht
                    .announce_with(info_hash, Some(port), seed)
                    .await
                    .map(|o| o.peers)
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let _ = tx
                .send(Event::Engine(Input::DhtPeers { torrent, peers }))
                .await;
        });
    }

    fn lsd_announce(&self, info_hashes: Vec<Sha1Hash>, port: u16) {
        let lsd = self
            .shared
            .lsd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(lsd) = lsd {
            tokio::spawn(async move { lsd.announce(&info_hashes, port).await });
        }
    }

    fn dht_node(&self, addr: SocketAddr) {
        if let Some(d) = self.shared.dht() {
            d.add_node(addr);
        }
    }

    fn remove_storage(&mut self, torrent: TorrentId, delete_files: bool, info_hash: InfoHash) {
        for h in info_hash.wire_hashes() {
            self.shared.ssl.remove(&h);
        }
        let io = self
            .shared
            .torrents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&torrent);
        if let Some(io) = io {
            self.submit_disk(
                Arc::clone(&io.store),
                lt_storage::Job::Remove { delete_files },
                DiskCtx::Remove {
                    info_hash,
                    delete_files,
                },
            );
        }
    }
}
