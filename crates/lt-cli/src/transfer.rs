//! `lt download` and `lt seed`: a session with one torrent, progress on stderr, a summary
//! on stdout, resume data next to the download, and a clean stop on SIGINT/SIGTERM.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lt_session::{
    AddTorrentParams, Alert, AlertCategory, DisconnectReason, EncPolicy, MagnetLink, ProxySettings,
    ResumeData, Session, SessionSettings, TorrentHandle, TorrentStatus,
};

use lt_metainfo::{WebSeed, WebSeedKind};

use crate::{load_torrent, print_stdout};

/// The encryption policy for both directions (the manual's `pe_settings`).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Encryption {
    /// Only encrypted connections.
    Forced,
    /// Try encryption, accept both (the default).
    Enabled,
    /// Plaintext only.
    Disabled,
}

/// Options both commands share.
#[derive(Debug, clap::Args)]
pub(crate) struct NetArgs {
    /// Peers to connect to (re-dialled until they answer).
    #[arg(long = "peer", value_name = "IP:PORT")]
    peers: Vec<SocketAddr>,
    /// Port to listen on (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    listen: u16,
    /// Encryption (MSE/PE) policy.
    #[arg(long, value_enum, default_value_t = Encryption::Enabled)]
    encryption: Encryption,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Map the listen port on the gateway with UPnP IGD and NAT-PMP/PCP (removed on exit).
    #[arg(long)]
    port_mapping: bool,
    /// Find peers on the LAN by local service discovery (BEP 14 multicast).
    #[arg(long)]
    lsd: bool,
    /// Upload rate limit of the torrent in bytes per second (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    upload_limit: u64,
    /// Download rate limit of the torrent in bytes per second (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    download_limit: u64,
    /// Apply the rate limits to peers on the local network too (loopback, private and
    /// link-local addresses are exempt otherwise, as in libtorrent).
    #[arg(long)]
    limit_local: bool,
    /// Make every connection through this proxy: socks5://host:port, socks4://host:port or
    /// http://host:port, with user:password@ before the host when it asks for them.
    /// Nothing then goes around it: no listening, local service discovery or port mapping,
    /// and uTP, the DHT and UDP trackers only through a SOCKS5 proxy's UDP relay.
    #[arg(long, value_name = "URL")]
    proxy: Option<ProxySettings>,
    /// Anonymous mode: no client name in the peer id or anywhere else, no listening, no
    /// DHT, local service discovery or port mapping, and trackers only through --proxy.
    #[arg(long)]
    anonymous: bool,
    /// Our certificate for an SSL torrent (PEM, signed by the torrent's root certificate
    /// and naming the torrent or `*`); with --ssl-key.
    #[arg(long, value_name = "FILE", requires = "ssl_key")]
    ssl_cert: Option<PathBuf>,
    /// The private key of --ssl-cert (PEM); when it is encrypted (PKCS#8, as OpenSSL 3
    /// writes it) its passphrase is read from the environment variable
    /// LT_SSL_KEY_PASSPHRASE.
    #[arg(long, value_name = "FILE", requires = "ssl_cert")]
    ssl_key: Option<PathBuf>,
    /// Port SSL torrents' peers connect to, TCP and uTP (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    ssl_listen: u16,
}

impl NetArgs {
    /// Gives an SSL torrent our certificate (when it asks: [`Alert::TorrentNeedCert`]).
    fn give_certificate(&self, handle: &TorrentHandle) -> Result<()> {
        let (Some(cert), Some(key)) = (&self.ssl_cert, &self.ssl_key) else {
            bail!(
                "this is an SSL torrent: give --ssl-cert and --ssl-key (a certificate its \
                 root certificate signed, and its key)"
            );
        };
        handle
            .set_ssl_certificate(
                cert,
                key,
                std::env::var("LT_SSL_KEY_PASSPHRASE").ok().as_deref(),
            )
            .with_context(|| format!("cannot use {}", cert.display()))?;
        eprintln!("SSL torrent: peers over TLS with {}", cert.display());
        Ok(())
    }
}

/// `lt download`.
#[derive(Debug, clap::Args)]
pub(crate) struct DownloadArgs {
    /// The .torrent file, or a magnet URI (the metadata is fetched from peers).
    torrent: String,
    /// Directory to download into (the torrent's name is created inside).
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    net: NetArgs,
    /// Keep seeding after the download completes, until interrupted.
    #[arg(long)]
    seed: bool,
    /// Where resume data and the session state are kept (default: DIR/.lt). Running the
    /// same download again with the same state directory resumes it.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Do not use the DHT.
    #[arg(long)]
    no_dht: bool,
    /// A DHT node to start from (repeatable); lt knows no public routers.
    #[arg(long = "dht-bootstrap", value_name = "IP:PORT")]
    dht_bootstrap: Vec<SocketAddr>,
    /// Only TCP connections, in and out.
    #[arg(long, conflicts_with = "utp_only")]
    tcp_only: bool,
    /// Only uTP connections, in and out.
    #[arg(long)]
    utp_only: bool,
    /// A BEP 19 web seed (an HTTP server holding the torrent's files) besides the
    /// torrent's own (repeatable).
    #[arg(long = "web-seed", value_name = "URL")]
    web_seeds: Vec<String>,
    /// A BEP 17 HTTP seed (a script answering `?info_hash=&piece=&ranges=`; repeatable).
    #[arg(long = "http-seed", value_name = "URL")]
    http_seeds: Vec<String>,
}

/// `lt seed`.
#[derive(Debug, clap::Args)]
pub(crate) struct SeedArgs {
    /// The .torrent file.
    torrent: PathBuf,
    /// Directory holding the torrent's data (the torrent's name inside it).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[command(flatten)]
    net: NetArgs,
    /// Only TCP connections, in and out.
    #[arg(long, conflicts_with = "utp_only")]
    tcp_only: bool,
    /// Only uTP connections, in and out.
    #[arg(long)]
    utp_only: bool,
    /// Do not use the DHT.
    #[arg(long)]
    no_dht: bool,
    /// A DHT node to start from (repeatable).
    #[arg(long = "dht-bootstrap", value_name = "IP:PORT")]
    dht_bootstrap: Vec<SocketAddr>,
    /// Super seeding (BEP 16): offer each peer one rare piece at a time instead of the
    /// whole bitfield, so the first copies go out with the least upload.
    #[arg(long)]
    super_seed: bool,
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    ctrlc::set_handler(move || s.store(true, Ordering::SeqCst))
        .context("cannot install the signal handler")?;
    Ok(stop)
}

/// Which transports a session uses.
#[derive(Clone, Copy, Debug)]
enum Transports {
    Both,
    TcpOnly,
    UtpOnly,
}

impl Transports {
    const fn from_flags(tcp_only: bool, utp_only: bool) -> Self {
        if utp_only {
            Self::UtpOnly
        } else if tcp_only {
            Self::TcpOnly
        } else {
            Self::Both
        }
    }
}

fn session(
    net: &NetArgs,
    transports: Transports,
    dht: Option<&[SocketAddr]>,
    state: Option<&Path>,
) -> Result<Session> {
    let mut settings = SessionSettings {
        listen_interfaces: vec![
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, net.listen)),
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, net.listen)),
        ],
        listen_port_retries: 0,
        enable_upnp: net.port_mapping,
        enable_natpmp: net.port_mapping,
        enable_lsd: net.lsd,
        alert_mask: AlertCategory::default_mask()
            | AlertCategory::TRACKER
            | AlertCategory::PORT_MAPPING
            // Failed dials, for the proxy's errors.
            | AlertCategory::PEER,
        ..SessionSettings::default()
    };
    let policy = match net.encryption {
        Encryption::Forced => EncPolicy::Forced,
        Encryption::Enabled => EncPolicy::Enabled,
        Encryption::Disabled => EncPolicy::Disabled,
    };
    let (tcp, utp) = match transports {
        Transports::Both => (true, true),
        Transports::TcpOnly => (true, false),
        Transports::UtpOnly => (false, true),
    };
    settings.engine.enable_incoming_tcp = tcp;
    settings.engine.enable_outgoing_tcp = tcp;
    settings.engine.enable_incoming_utp = utp;
    settings.engine.enable_outgoing_utp = utp;
    if let Some(bytes) = state.and_then(|p| std::fs::read(p).ok())
        && let Err(e) = settings.load_state(&bytes)
    {
        eprintln!("lt: ignoring the saved session state: {e}");
    }
    settings.enable_dht = dht.is_some();
    settings.dht_bootstrap_nodes = dht.unwrap_or_default().to_vec();
    settings.engine.ignore_limits_on_local_network = !net.limit_local;
    settings.engine.out_enc_policy = policy;
    settings.engine.in_enc_policy = policy;
    // Local swarms run every peer on one address.
    settings.engine.allow_multiple_connections_per_ip = true;
    settings.engine.tick_interval = Duration::from_millis(200);
    settings.proxy.clone_from(&net.proxy);
    settings.anonymous_mode = net.anonymous;
    settings.ssl_listen = Some(net.ssl_listen);
    let session = Session::new(settings).context("cannot start the session")?;
    for addr in session.listen_addrs() {
        eprintln!("listening on {addr}");
    }
    if session.ssl_listen_port() != 0 {
        eprintln!(
            "listening for SSL torrents on port {}",
            session.ssl_listen_port()
        );
    }
    Ok(session)
}

/// Saves resume data and waits (a few seconds at most) for it to be written.
fn save_resume(session: &Session, handle: &TorrentHandle, path: &Path) -> Result<()> {
    handle.save_resume_data();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        session.wait_for_alert(Duration::from_millis(200));
        for alert in session.pop_alerts() {
            match alert {
                Alert::SaveResumeData { data, .. } => return write_resume(path, &data),
                Alert::SaveResumeDataFailed { error, .. } => {
                    bail!("saving resume data failed: {error}")
                }
                other => report(&other),
            }
        }
    }
    bail!("saving resume data timed out")
}

/// Keeps the session's state (limits, DHT nodes) next to the resume data; a failure only
/// costs the next run its DHT head start.
fn save_state(session: &Session, path: &Path) {
    if let Err(e) = write_atomically(path, &session.save_state()) {
        eprintln!("lt: cannot save the session state: {e:#}");
    }
}

fn write_resume(path: &Path, data: &ResumeData) -> Result<()> {
    write_atomically(path, &data.to_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a
/// crash leaves the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Prints the alerts a user should see.
fn report(alert: &Alert) {
    match alert {
        Alert::PortMap {
            transport,
            protocol,
            external_port,
            ..
        } => eprintln!("port mapping: {transport} {protocol} external port {external_port}"),
        Alert::PortMapError {
            transport, error, ..
        } => {
            eprintln!("lt: port mapping ({transport}): {error}");
        }
        Alert::ExternalIp { address } => eprintln!("external address {address}"),
        Alert::FileError { error, .. } => eprintln!("lt: file error: {error}"),
        Alert::InternalError { message, .. } => {
            eprintln!("lt: internal error (the torrent is paused): {message}");
        }
        Alert::TrackerError {
            url,
            error,
            times_in_row,
            ..
        } if *times_in_row <= 1 => {
            eprintln!("lt: tracker {url}: {error}");
        }
        Alert::UploadMode { enabled: true, .. } => {
            eprintln!("lt: disk errors: upload mode until writes work again");
        }
        Alert::UrlSeed { url, error, .. } => eprintln!("lt: web seed {url}: {error}"),
        Alert::AnonymousMode { message } => eprintln!("lt: {message}"),
        // A peer the proxy could not reach, or a proxy that refuses us: each error once,
        // not at every redial.
        Alert::PeerDisconnected {
            reason: DisconnectReason::Io(e),
            ..
        } if e.message.starts_with("proxy ") => {
            static SEEN: std::sync::Mutex<BTreeSet<String>> =
                std::sync::Mutex::new(BTreeSet::new());
            let mut seen = SEEN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.insert(e.message.clone()) {
                eprintln!("lt: {e}");
            }
        }
        _ => {}
    }
}

/// Progress output: a bar on a terminal, a line a second otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, s: &TorrentStatus) {
        let rate = s.download_payload_rate;
        if let Some(bar) = &self.bar {
            bar.set_length(s.total_wanted);
            bar.set_position(s.total_wanted_done);
            bar.set_message(format!(
                "{:.1} MB/s {} peers{}",
                rate as f64 / 1e6,
                s.num_peers,
                web_seeds(s)
            ));
        } else if self.last_line.elapsed() >= Duration::from_secs(1) && !s.has_metadata {
            self.last_line = Instant::now();
            eprintln!("fetching the metadata: {} peers", s.num_peers);
        } else if self.last_line.elapsed() >= Duration::from_secs(1) {
            self.last_line = Instant::now();
            let left = s.total_wanted.saturating_sub(s.total_wanted_done);
            let eta = left
                .checked_div(rate)
                .map_or_else(|| "?".to_owned(), |secs| format!("{secs}s"));
            eprintln!(
                "progress {:.1}% {:.1} MB/s {} peers{} eta {eta}",
                f64::from(s.progress) * 100.0,
                rate as f64 / 1e6,
                s.num_peers,
                web_seeds(s)
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// ` + N web seeds` while web seeds are in use.
fn web_seeds(s: &TorrentStatus) -> String {
    if s.num_web_seeds == 0 {
        String::new()
    } else {
        format!(" + {} web seeds", s.num_web_seeds)
    }
}

#[allow(clippy::cast_precision_loss)]
pub(crate) fn download(args: &DownloadArgs) -> Result<()> {
    let transports = Transports::from_flags(args.tcp_only, args.utp_only);
    let (mut params, ih) = if args.torrent.starts_with("magnet:") {
        let link = MagnetLink::parse(&args.torrent).context("not a valid magnet URI")?;
        let ih = link.info_hash;
        (AddTorrentParams::from_magnet(link, &args.out), ih)
    } else {
        let info = Arc::new(load_torrent(Path::new(&args.torrent))?);
        let ih = info.info_hash();
        (AddTorrentParams::new(info, &args.out), ih)
    };
    let stop = stop_flag()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let dht = (!args.no_dht).then_some(args.dht_bootstrap.as_slice());
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| args.out.join(".lt"));
    let state_path = state_dir.join("session.state");
    let session = session(&args.net, transports, dht, Some(&state_path))?;
    let start = Instant::now();
    params.peers.extend(args.net.peers.iter().copied());
    let kinds = [
        (&args.web_seeds, WebSeedKind::Url),
        (&args.http_seeds, WebSeedKind::Http),
    ];
    for (urls, kind) in kinds {
        params.web_seeds.extend(urls.iter().map(|url| WebSeed {
            url: url.clone(),
            kind,
        }));
    }
    params.upload_limit = args.net.upload_limit;
    params.download_limit = args.net.download_limit;
    let hex = ih.v1_hash().map_or_else(
        || ih.v2_hash().map(|h| h.to_hex()).unwrap_or_default(),
        |h| h.to_hex(),
    );
    let rpath = state_dir.join(format!("{hex}.resume"));
    if let Ok(bytes) = std::fs::read(&rpath) {
        match ResumeData::from_bytes(&bytes) {
            Ok(r) => params.resume = Some(r),
            Err(e) => eprintln!("lt: ignoring {}: {e}", rpath.display()),
        }
    }
    let handle = session
        .add_torrent(params)
        .context("cannot add the torrent")?;
    let mut progress = Progress::new(0);
    let mut resumed: Option<u32> = None;
    let mut saved_pieces = u32::MAX;
    let mut last_save = Instant::now();
    // A magnet's metadata is kept as a .torrent next to the resume data once it arrives.
    let mut torrent_to_save = args
        .torrent
        .starts_with("magnet:")
        .then(|| state_dir.join(format!("{hex}.torrent")));
    let status = loop {
        session.wait_for_alert(Duration::from_millis(200));
        for alert in session.pop_alerts() {
            if let Alert::SaveResumeData { data, .. } = &alert {
                write_resume(&rpath, data)?;
            }
            if let Alert::TorrentNeedCert { .. } = &alert {
                args.net.give_certificate(&handle)?;
            }
            // What the check found, before any piece downloaded after it.
            if let Alert::TorrentChecked { pieces, .. } = &alert {
                resumed.get_or_insert(*pieces);
            }
            report(&alert);
        }
        let s = handle.status()?;
        if s.has_metadata
            && let Some(path) = torrent_to_save.take()
        {
            // Only a convenience: a failure costs the next run the metadata fetch.
            match write_atomically(&path, &handle.torrent_file()?.to_bytes()) {
                Ok(()) => eprintln!("metadata saved to {}", path.display()),
                Err(e) => eprintln!("lt: cannot save the metadata: {e:#}"),
            }
        }
        progress.update(&s);
        if !s.has_metadata && stop.load(Ordering::SeqCst) {
            session.shutdown();
            bail!("interrupted while fetching the metadata");
        }
        if s.is_seeding {
            break s;
        }
        if stop.load(Ordering::SeqCst) {
            progress.finish();
            save_resume(&session, &handle, &rpath)?;
            save_state(&session, &state_path);
            session.shutdown();
            bail!(
                "interrupted at {:.1}%; resume data saved",
                f64::from(s.progress) * 100.0
            );
        }
        if s.num_pieces != saved_pieces
            && last_save.elapsed() >= Duration::from_secs(1)
            && !s.is_checking()
        {
            saved_pieces = s.num_pieces;
            last_save = Instant::now();
            handle.save_resume_data();
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let info = handle.torrent_file()?;
    progress.finish();
    save_resume(&session, &handle, &rpath)?;
    let payload = status.total_payload_download;
    let summary = serde_json::json!({
        "name": status.name,
        "info_hash": hex,
        "total_bytes": info.total_size(),
        "pieces": info.num_pieces(),
        "pieces_verified": status.num_pieces,
        "resumed_pieces": resumed.unwrap_or(0),
        "payload_downloaded": payload,
        "seconds": seconds,
        "mb_per_s": payload as f64 / 1e6 / seconds.max(1e-9),
        "peers_banned": status.num_banned,
        "web_seed_bytes": status.total_web_seed_download,
        "web_seeds_banned": status.web_seeds_banned,
        "complete": true,
    });
    if args.net.json {
        print_stdout(&format!("{summary}\n"))?;
    } else {
        print_stdout(&format!(
            "done {}: {} bytes in {seconds:.2} s ({:.1} MB/s)\n",
            status.name,
            info.total_size(),
            payload as f64 / 1e6 / seconds.max(1e-9)
        ))?;
    }
    if args.seed {
        eprintln!(
            "seeding {}: {}/{} pieces",
            status.name,
            status.num_pieces,
            info.num_pieces()
        );
        seed_until_stopped(&session, &handle, &stop);
    }
    save_state(&session, &state_path);
    session.shutdown();
    Ok(())
}

fn seed_until_stopped(session: &Session, handle: &TorrentHandle, stop: &AtomicBool) {
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        session.wait_for_alert(Duration::from_millis(200));
        for alert in session.pop_alerts() {
            report(&alert);
        }
        if last.elapsed() >= Duration::from_secs(5)
            && let Ok(s) = handle.status()
        {
            last = Instant::now();
            #[allow(clippy::cast_precision_loss)]
            let up = s.upload_payload_rate as f64 / 1e6;
            eprintln!(
                "seeding: uploaded {} bytes, {up:.1} MB/s, {} peers",
                s.total_payload_upload, s.num_peers
            );
        }
    }
}

pub(crate) fn seed(args: &SeedArgs) -> Result<()> {
    let info = Arc::new(load_torrent(&args.torrent)?);
    let stop = stop_flag()?;
    let transports = Transports::from_flags(args.tcp_only, args.utp_only);
    let dht = (!args.no_dht).then_some(args.dht_bootstrap.as_slice());
    let session = session(&args.net, transports, dht, None)?;
    let mut params = AddTorrentParams::new(Arc::clone(&info), &args.data);
    params.peers.clone_from(&args.net.peers);
    params.upload_limit = args.net.upload_limit;
    params.download_limit = args.net.download_limit;
    params.flags.super_seeding = args.super_seed;
    let handle = session
        .add_torrent(params)
        .context("cannot add the torrent")?;
    let status = loop {
        session.wait_for_alert(Duration::from_millis(100));
        for alert in session.pop_alerts() {
            if let Alert::TorrentNeedCert { .. } = &alert {
                args.net.give_certificate(&handle)?;
            }
            report(&alert);
        }
        let s = handle.status()?;
        if let Some(e) = &s.error {
            bail!("cannot check {}: {e}", args.data.display());
        }
        if !s.is_checking() {
            break s;
        }
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted while checking");
        }
    };
    if !status.is_seeding {
        session.shutdown();
        bail!(
            "the data under {} is incomplete: {} of {} pieces",
            args.data.display(),
            status.num_pieces,
            info.num_pieces()
        );
    }
    eprintln!(
        "seeding {}: {}/{} pieces",
        status.name,
        status.num_pieces,
        info.num_pieces()
    );
    seed_until_stopped(&session, &handle, &stop);
    let uploaded = handle.status().map_or(0, |s| s.total_payload_upload);
    session.shutdown();
    if args.net.json {
        print_stdout(&format!(
            "{}\n",
            serde_json::json!({ "uploaded": uploaded })
        ))?;
    }
    Ok(())
}
