//! [`TorrentHandle`]: one torrent of a session (the manual's `torrent_handle`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use lt_core::{InfoHash, PieceIndex};
pub(crate) use lt_engine::{PartialPiece, PeerInfo, TorrentId, TorrentStatus};
use lt_metainfo::{TorrentInfo, WebSeed, WebSeedKind};

use crate::Error;
use crate::Shared;

/// A torrent in a session (the manual's `torrent_handle`). Cheap to clone; methods on a
/// removed torrent do nothing or return [`Error::InvalidHandle`].
#[derive(Clone)]
pub struct TorrentHandle {
    pub(crate) id: TorrentId,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for TorrentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TorrentHandle").field(&self.id).finish()
    }
}

impl PartialEq for TorrentHandle {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl TorrentHandle {
    /// The torrent's id in the session.
    #[must_use]
    pub const fn id(&self) -> TorrentId {
        self.id
    }

    /// Whether the torrent is still in the session.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.shared.engine().torrent_info(self.id).is_some()
    }

    /// Its metadata.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    pub fn torrent_file(&self) -> Result<Arc<TorrentInfo>, Error> {
        self.shared
            .engine()
            .torrent_info(self.id)
            .ok_or(Error::InvalidHandle)
    }

    /// Gives an SSL torrent our certificate (the manual's `set_ssl_certificate`): `cert` is
    /// a PEM file with our certificate (then any intermediates), signed by the torrent's
    /// root certificate and naming the torrent (or `*`); `key` the PEM file of its private
    /// key (PKCS#8, PKCS#1 or SEC1), with `passphrase` when it is encrypted (PKCS#8 PBES2, as
    /// OpenSSL 3 writes it). From then on the torrent dials its peers
    /// over TLS and accepts theirs on the SSL listen port; until then it connects to no
    /// one ([`Alert::TorrentNeedCert`](lt_engine::Alert::TorrentNeedCert)). Setting it again
    /// replaces it for new connections.
    ///
    /// libtorrent's `dh_params` has no counterpart: rustls uses ECDHE only.
    ///
    /// # Errors
    /// [`Error::Ssl`] when a file cannot be read, the torrent is not an SSL torrent, or the
    /// certificate would be refused by its peers (see [`Self::set_ssl_certificate_pem`]);
    /// [`Error::InvalidHandle`].
    pub fn set_ssl_certificate(
        &self,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
        passphrase: Option<&str>,
    ) -> Result<(), Error> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| crate::SslError::Io {
                path: p.to_owned(),
                source,
            })
        };
        let cert = read(cert.as_ref())?;
        let key = read(key.as_ref())?;
        self.set_ssl_certificate_pem(&cert, &key, passphrase)
    }

    /// [`Self::set_ssl_certificate`] from PEM text in memory (libtorrent 2.x's
    /// `set_ssl_certificate_buffer`).
    ///
    /// # Errors
    /// [`Error::Ssl`]: [`SslError::NotSslTorrent`](crate::SslError::NotSslTorrent) without a
    /// root certificate in the metadata (or before a magnet's metadata arrived);
    /// [`SslError::Refused`](crate::SslError::Refused) when our certificate is not signed by
    /// the torrent's root, has expired or does not name the torrent, which every peer would
    /// check; or an unreadable certificate or key, or a key that is not the
    /// certificate's. [`Error::InvalidHandle`].
    pub fn set_ssl_certificate_pem(
        &self,
        cert: &[u8],
        key: &[u8],
        passphrase: Option<&str>,
    ) -> Result<(), Error> {
        let info = self.torrent_file()?;
        let root = info.ssl_cert().ok_or(crate::SslError::NotSslTorrent)?;
        let ih = info.info_hash();
        let best = ih.best();
        for hash in ih.wire_hashes() {
            let tls = crate::ssl::TorrentTls::new(root, info.name(), &best, cert, key, passphrase)?;
            self.shared.ssl.insert(hash, tls);
        }
        if self
            .shared
            .with(|e, now| e.set_ssl_certificate(now, self.id))
        {
            Ok(())
        } else {
            for hash in ih.wire_hashes() {
                self.shared.ssl.remove(&hash);
            }
            Err(crate::SslError::NotSslTorrent.into())
        }
    }

    /// Its info-hashes.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    pub fn info_hash(&self) -> Result<InfoHash, Error> {
        Ok(self.torrent_file()?.info_hash())
    }

    /// Its status (the manual's `status()`).
    ///
    /// # Errors
    /// [`Error::InvalidHandle`].
    pub fn status(&self) -> Result<TorrentStatus, Error> {
        self.shared
            .engine()
            .status(Instant::now(), self.id)
            .ok_or(Error::InvalidHandle)
    }

    /// Its save path.
    #[must_use]
    pub fn save_path(&self) -> Option<PathBuf> {
        let t = self
            .shared
            .torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        t.get(&self.id).map(|io| io.store.save_path())
    }

    /// Connected peers (the manual's `get_peer_info`).
    #[must_use]
    pub fn peer_info(&self) -> Vec<PeerInfo> {
        self.shared.engine().peer_info(self.id)
    }

    /// Pieces being downloaded (the manual's `get_download_queue`).
    #[must_use]
    pub fn download_queue(&self) -> Vec<PartialPiece> {
        self.shared.engine().download_queue(self.id)
    }

    /// Bytes downloaded of each file, counting verified pieces.
    #[must_use]
    pub fn file_progress(&self) -> Vec<u64> {
        self.shared.engine().file_progress(self.id)
    }

    /// Pauses the torrent.
    pub fn pause(&self) {
        self.shared.with(|e, now| e.pause_torrent(now, self.id));
    }

    /// Resumes the torrent.
    pub fn resume(&self) {
        self.shared.with(|e, now| e.resume_torrent(now, self.id));
    }

    /// Whether the session's IP filter applies to this torrent (default: yes).
    pub fn set_apply_ip_filter(&self, on: bool) {
        self.shared.with(|e, _| e.set_apply_ip_filter(self.id, on));
    }

    /// Lets the queue start and stop the torrent, or not (the manual's `auto_managed`).
    pub fn set_auto_managed(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_auto_managed(now, self.id, on));
    }

    /// Its place in the download queue (0 first); `None` once finished.
    #[must_use]
    pub fn queue_position(&self) -> Option<u32> {
        self.shared.engine().queue_position(self.id)
    }

    /// One place up the queue.
    pub fn queue_position_up(&self) {
        self.shared.with(|e, now| e.queue_position_up(now, self.id));
    }

    /// One place down the queue.
    pub fn queue_position_down(&self) {
        self.shared
            .with(|e, now| e.queue_position_down(now, self.id));
    }

    /// To the front of the queue.
    pub fn queue_position_top(&self) {
        self.shared
            .with(|e, now| e.queue_position_top(now, self.id));
    }

    /// To the back of the queue.
    pub fn queue_position_bottom(&self) {
        self.shared
            .with(|e, now| e.queue_position_bottom(now, self.id));
    }

    /// Rechecks every piece.
    pub fn force_recheck(&self) {
        self.shared.with(|e, now| e.force_recheck(now, self.id));
    }

    /// Announces to the trackers now.
    pub fn force_reannounce(&self) {
        self.shared.with(|e, now| e.force_reannounce(now, self.id));
    }

    /// Scrapes the first tracker; [`Alert::ScrapeReply`](crate::Alert::ScrapeReply) or [`Alert::ScrapeFailed`](crate::Alert::ScrapeFailed)
    /// follows.
    pub fn scrape_tracker(&self) {
        self.shared.with(|e, _| e.scrape_tracker(self.id));
    }

    /// Connects to a peer.
    pub fn connect_peer(&self, addr: SocketAddr) {
        self.shared
            .with(|e, now| e.connect_peer(now, self.id, addr));
    }

    /// Sets the upload limit in bytes per second (0: none).
    pub fn set_upload_limit(&self, limit: u64) {
        self.shared.with(|e, _| e.set_upload_limit(self.id, limit));
    }

    /// Sets the download limit in bytes per second (0: none).
    pub fn set_download_limit(&self, limit: u64) {
        self.shared
            .with(|e, _| e.set_download_limit(self.id, limit));
    }

    /// The upload and download limits.
    #[must_use]
    pub fn limits(&self) -> Option<(u64, u64)> {
        self.shared.engine().limits(self.id)
    }

    /// Sets the connection limit.
    pub fn set_max_connections(&self, max: usize) {
        self.shared.with(|e, _| e.set_max_connections(self.id, max));
    }

    /// Sets the unchoke limit.
    pub fn set_max_uploads(&self, max: Option<usize>) {
        self.shared.with(|e, _| e.set_max_uploads(self.id, max));
    }

    /// Downloads in order, or not.
    pub fn set_sequential_download(&self, on: bool) {
        self.shared
            .with(|e, _| e.set_sequential_download(self.id, on));
    }

    /// Super seeding (BEP 16) on or off: while a seed, offer each new peer one rare piece
    /// at a time instead of a bitfield.
    pub fn set_super_seeding(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_super_seeding(now, self.id, on));
    }

    /// Share mode on or off: download only pieces that can be uploaded
    /// `share_mode_target` times over.
    pub fn set_share_mode(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_share_mode(now, self.id, on));
    }

    /// Upload mode on or off.
    pub fn set_upload_mode(&self, on: bool) {
        self.shared
            .with(|e, now| e.set_upload_mode(now, self.id, on));
    }

    /// Reads a piece; [`Alert::ReadPiece`](crate::Alert::ReadPiece) brings it.
    pub fn read_piece(&self, piece: PieceIndex) {
        self.shared.with(|e, _| e.read_piece(self.id, piece));
    }

    /// Wants `piece` within `deadline`.
    pub fn set_piece_deadline(&self, piece: PieceIndex, deadline: Duration) {
        self.shared
            .with(|e, now| e.set_piece_deadline(now, self.id, piece, now + deadline));
    }

    /// Forgets a piece's deadline.
    pub fn reset_piece_deadline(&self, piece: PieceIndex) {
        self.shared
            .with(|e, _| e.reset_piece_deadline(self.id, piece));
    }

    /// Whether we have `piece`.
    #[must_use]
    pub fn have_piece(&self, piece: PieceIndex) -> bool {
        self.shared.engine().have_piece(self.id, piece)
    }

    /// Sets one piece's priority (0 to 7).
    pub fn piece_priority(&self, piece: PieceIndex, priority: u8) {
        self.shared
            .with(|e, now| e.set_piece_priority(now, self.id, piece, priority));
    }

    /// Sets every piece's priority (0 to 7; the manual's `prioritize_pieces`); pieces past
    /// the list keep theirs.
    pub fn prioritize_pieces(&self, priorities: &[u8]) {
        self.shared
            .with(|e, now| e.prioritize_pieces(now, self.id, priorities));
    }

    /// How many connected peers have each piece (the manual's `piece_availability`);
    /// empty before the metadata.
    #[must_use]
    pub fn piece_availability(&self) -> Vec<u32> {
        self.shared.engine().piece_availability(self.id)
    }

    /// Sets one file's priority (0 to 7; the manual's `file_priority(index, priority)`).
    pub fn file_priority(&self, file: usize, priority: u8) {
        self.shared
            .with(|e, now| e.set_file_priority(now, self.id, file, priority));
    }

    /// Replaces the trackers with these tiers (the manual's `replace_trackers`).
    pub fn replace_trackers(&self, tiers: &[Vec<String>]) {
        self.shared
            .with(|e, now| e.replace_trackers(now, self.id, tiers));
    }

    /// Announces on the DHT now (the manual's `force_dht_announce`).
    pub fn force_dht_announce(&self) {
        self.shared
            .with(|e, now| e.force_dht_announce(now, self.id));
    }

    /// Clears the torrent's error and starts it again if the error paused it (the
    /// manual's `clear_error`).
    pub fn clear_error(&self) {
        self.shared.with(|e, now| e.clear_error(now, self.id));
    }

    /// Whether resume data saved now would differ from the last saved (the manual's
    /// `need_save_resume_data`): true until the first save, then after a piece, a priority,
    /// a flag, a limit, a tracker or a web seed changes.
    #[must_use]
    pub fn need_save_resume_data(&self) -> bool {
        self.shared
            .engine()
            .need_save_resume_data(Instant::now(), self.id)
    }

    /// Every piece's priority.
    #[must_use]
    pub fn piece_priorities(&self) -> Vec<u8> {
        self.shared.engine().piece_priorities(self.id)
    }

    /// Sets every file's priority (0 to 7).
    pub fn prioritize_files(&self, priorities: &[u8]) {
        self.shared
            .with(|e, now| e.prioritize_files(now, self.id, priorities));
    }

    /// Every file's priority.
    #[must_use]
    pub fn file_priorities(&self) -> Vec<u8> {
        self.shared.engine().file_priorities(self.id)
    }

    /// Moves the files; [`Alert::StorageMoved`](crate::Alert::StorageMoved) follows.
    pub fn move_storage(&self, path: impl Into<String>) {
        let path = path.into();
        self.shared.with(|e, _| e.move_storage(self.id, path));
    }

    /// Renames a file; [`Alert::FileRenamed`](crate::Alert::FileRenamed) follows.
    pub fn rename_file(&self, file: u32, name: impl Into<String>) {
        let name = name.into();
        self.shared.with(|e, _| e.rename_file(self.id, file, name));
    }

    /// Saves resume data; [`Alert::SaveResumeData`](crate::Alert::SaveResumeData) brings it.
    pub fn save_resume_data(&self) {
        self.shared.with(|e, now| e.save_resume_data(now, self.id));
    }

    /// The trackers and their state.
    #[must_use]
    pub fn trackers(&self) -> Vec<lt_tracker::AnnounceEntry> {
        self.shared.engine().trackers(self.id)
    }

    /// Adds a tracker.
    pub fn add_tracker(&self, url: &str, tier: u8) {
        self.shared
            .with(|e, now| e.add_tracker(now, self.id, url, tier));
    }

    /// Adds a BEP 19 url seed (the manual's `add_url_seed`): an HTTP(S) server holding the
    /// torrent's files.
    pub fn add_url_seed(&self, url: &str) {
        self.add_web_seed(url, WebSeedKind::Url);
    }

    /// Removes a url seed (the manual's `remove_url_seed`).
    pub fn remove_url_seed(&self, url: &str) {
        self.remove_web_seed(url, WebSeedKind::Url);
    }

    /// The url seeds (the manual's `url_seeds`), banned ones included.
    #[must_use]
    pub fn url_seeds(&self) -> Vec<String> {
        self.shared.engine().web_seeds(self.id, WebSeedKind::Url)
    }

    /// Adds a BEP 17 HTTP seed (the manual's `add_http_seed`).
    pub fn add_http_seed(&self, url: &str) {
        self.add_web_seed(url, WebSeedKind::Http);
    }

    /// Removes an HTTP seed (the manual's `remove_http_seed`).
    pub fn remove_http_seed(&self, url: &str) {
        self.remove_web_seed(url, WebSeedKind::Http);
    }

    /// The HTTP seeds (the manual's `http_seeds`).
    #[must_use]
    pub fn http_seeds(&self) -> Vec<String> {
        self.shared.engine().web_seeds(self.id, WebSeedKind::Http)
    }

    fn add_web_seed(&self, url: &str, kind: WebSeedKind) {
        let seed = WebSeed {
            url: url.to_owned(),
            kind,
        };
        self.shared
            .with(|e, now| e.add_web_seed(now, self.id, seed));
    }

    fn remove_web_seed(&self, url: &str, kind: WebSeedKind) {
        let seed = WebSeed {
            url: url.to_owned(),
            kind,
        };
        self.shared.with(|e, _| e.remove_web_seed(self.id, &seed));
    }
}
