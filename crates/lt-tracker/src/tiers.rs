//! BEP 12 multi-tracker: tiers, shuffling, fail-over, and the per-tracker state that
//! libtorrent's `announce_entry` exposes.

use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{AnnounceResponse, Error, Event, ScrapeEntry, limits};

/// Most trackers kept in one [`TrackerList`]; further URLs are ignored.
pub const MAX_TRACKERS: usize = 200;

/// Where a tracker URL came from (libtorrent's `announce_entry::tracker_source`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrackerSource {
    /// The torrent's `announce` / `announce-list`.
    #[default]
    Torrent,
    /// Added by the user.
    Client,
    /// A magnet link's `tr`.
    MagnetLink,
    /// Tracker exchange.
    Tex,
}

/// One tracker's state (after libtorrent's `announce_entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceEntry {
    /// The announce URL.
    pub url: String,
    /// Tier number (0 is tried first).
    pub tier: u8,
    /// The `tracker id` it gave us.
    pub tracker_id: Option<Vec<u8>>,
    /// The last warning or failure text from the tracker.
    pub message: String,
    /// The last error, if the last announce failed.
    pub last_error: Option<Error>,
    /// Failures in a row.
    pub fails: u32,
    /// Give up on this tracker after this many failures in a row (0 = never).
    pub fail_limit: u32,
    /// When we may announce next (`None`: now).
    pub next_announce: Option<Instant>,
    /// Earliest time a re-announce is allowed (`min interval`).
    pub min_announce: Option<Instant>,
    /// Seeds from the last scrape or announce, if known.
    pub scrape_complete: Option<u32>,
    /// Leechers from the last scrape or announce, if known.
    pub scrape_incomplete: Option<u32>,
    /// Completed downloads from the last scrape, if known.
    pub scrape_downloaded: Option<u32>,
    /// It answered at least once.
    pub verified: bool,
    /// An announce is in flight.
    pub updating: bool,
    /// A `started` announce succeeded.
    pub start_sent: bool,
    /// A `completed` announce succeeded.
    pub complete_sent: bool,
    /// Where the URL came from.
    pub source: TrackerSource,
}

impl AnnounceEntry {
    fn new(url: String, tier: u8) -> Self {
        Self {
            url,
            tier,
            tracker_id: None,
            message: String::new(),
            last_error: None,
            fails: 0,
            fail_limit: 0,
            next_announce: None,
            min_announce: None,
            scrape_complete: None,
            scrape_incomplete: None,
            scrape_downloaded: None,
            verified: false,
            updating: false,
            start_sent: false,
            complete_sent: false,
            source: TrackerSource::Torrent,
        }
    }

    /// Time until the next regular announce (zero if due now).
    pub fn next_announce_in(&self, now: Instant) -> Duration {
        self.next_announce
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Time until a forced re-announce is allowed (`min interval`; zero if allowed now).
    pub fn min_announce_in(&self, now: Instant) -> Duration {
        self.min_announce
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Whether this tracker is worth trying: it has not hit its fail limit.
    pub const fn can_announce(&self) -> bool {
        self.fail_limit == 0 || self.fails < self.fail_limit
    }

    fn due(&self, now: Instant) -> bool {
        !self.updating && self.can_announce() && self.next_announce.is_none_or(|t| t <= now)
    }
}

/// Which tracker: an index into [`TrackerList::entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackerIndex(pub usize);

/// The trackers of one torrent, in BEP 12 order.
///
/// Trackers are shuffled within their tier once, at creation. [`next_announce`]
/// (`TrackerList::next_announce`) hands out the first due tracker in order: the first
/// tracker of the first tier, or, once it failed, the next one of the tier and then of
/// the following tiers. A tracker that answers moves to the front of its tier and
/// becomes the one announced to from then on. Failed trackers back off
/// (`retry_base` × fails², capped at one hour), so the list comes back to them later.
///
/// Sans-IO: the caller performs the announce and reports with [`on_success`] or
/// [`on_failure`]; [`poll_timeout`] says when a tracker next becomes due.
///
/// [`next_announce`]: TrackerList::next_announce
/// [`on_success`]: TrackerList::on_success
/// [`on_failure`]: TrackerList::on_failure
/// [`poll_timeout`]: TrackerList::poll_timeout
#[derive(Debug, Clone)]
pub struct TrackerList {
    entries: Vec<AnnounceEntry>,
    retry_base: Duration,
}

impl TrackerList {
    /// Builds the list from `announce-list` tiers (each a list of URLs), shuffling each
    /// tier with an RNG seeded from `rng_seed`. Empty URLs and URLs past [`MAX_TRACKERS`]
    /// are dropped.
    pub fn new<S: AsRef<str>>(tiers: &[Vec<S>], rng_seed: [u8; 32]) -> Self {
        let mut rng = ChaCha8Rng::from_seed(rng_seed);
        let mut entries = Vec::new();
        for (t, tier) in tiers.iter().enumerate() {
            let tier_no = u8::try_from(t).unwrap_or(u8::MAX);
            let mut urls: Vec<AnnounceEntry> = tier
                .iter()
                .map(AsRef::as_ref)
                .filter(|u| !u.is_empty())
                .map(|u| AnnounceEntry::new(u.to_owned(), tier_no))
                .collect();
            // BEP 12: "the URLs within each tier are processed in a randomly chosen order".
            for i in (1..urls.len()).rev() {
                let j = usize::try_from(rng.next_u64() % (i as u64 + 1)).unwrap_or(0);
                urls.swap(i, j);
            }
            for e in urls {
                if entries.len() < MAX_TRACKERS {
                    entries.push(e);
                }
            }
        }
        // A session of ten thousand torrents keeps ten thousand of these lists: the
        // capacity of four a first push leaves would be 528 bytes each spent on nothing.
        entries.shrink_to_fit();
        Self {
            entries,
            retry_base: Duration::from_secs(5),
        }
    }

    /// Sets the base of the failure back-off (default 5 s; libtorrent's
    /// `tracker_backoff` scales the same curve).
    pub const fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Adds a tracker to `tier` (appended to the tier; BEP 12 order is kept) unless the URL
    /// is already listed or the list holds [`MAX_TRACKERS`]. Returns whether it was added.
    pub fn add_tracker(&mut self, url: &str, tier: u8, source: TrackerSource) -> bool {
        if url.is_empty()
            || self.entries.len() >= MAX_TRACKERS
            || self.entries.iter().any(|e| e.url == url)
        {
            return false;
        }
        let mut e = AnnounceEntry::new(url.to_owned(), tier);
        e.source = source;
        let at = self
            .entries
            .iter()
            .position(|x| x.tier > tier)
            .unwrap_or(self.entries.len());
        self.entries.insert(at, e);
        true
    }

    /// Sets how many failures in a row retire a tracker (0 = never).
    pub fn set_fail_limit(&mut self, i: TrackerIndex, limit: u32) {
        if let Some(e) = self.entries.get_mut(i.0) {
            e.fail_limit = limit;
        }
    }

    /// All trackers in announce order.
    pub fn entries(&self) -> &[AnnounceEntry] {
        &self.entries
    }

    /// One tracker.
    pub fn entry(&self, i: TrackerIndex) -> Option<&AnnounceEntry> {
        self.entries.get(i.0)
    }

    /// The tracker to announce to now, marking it `updating`, or `None` if one is already
    /// updating or none is due. BEP 12: the first due tracker in order; a tracker is only
    /// skipped once it failed.
    pub fn next_announce(&mut self, now: Instant) -> Option<TrackerIndex> {
        if self.entries.iter().any(|e| e.updating) {
            return None;
        }
        let i = self.entries.iter().position(|e| e.due(now))?;
        // Only move past trackers that failed: a verified or untried tracker that is not
        // yet due (waiting for its interval) keeps its place.
        if self.entries[..i]
            .iter()
            .any(|e| e.fails == 0 && e.can_announce())
        {
            return None;
        }
        self.entries[i].updating = true;
        Some(TrackerIndex(i))
    }

    /// Records a successful announce of `event`: resets the failure count, schedules the
    /// next announce after `interval`, and moves the tracker to the front of its tier
    /// (BEP 12). Returns the tracker's new index.
    pub fn on_success(
        &mut self,
        now: Instant,
        i: TrackerIndex,
        event: Event,
        resp: &AnnounceResponse,
    ) -> TrackerIndex {
        let Some(e) = self.entries.get_mut(i.0) else {
            return i;
        };
        e.updating = false;
        e.verified = true;
        e.fails = 0;
        match event {
            Event::Started => e.start_sent = true,
            Event::Completed => e.complete_sent = true,
            // After `stopped` the next announce must be a `started` again.
            Event::Stopped => e.start_sent = false,
            Event::None => {}
        }
        e.last_error = None;
        e.message = resp.warning.clone().unwrap_or_default();
        if resp.tracker_id.is_some() {
            e.tracker_id.clone_from(&resp.tracker_id);
        }
        // The reply may be hand-built or from a tracker that lies: clamp before adding.
        e.next_announce = Some(later(now, resp.interval.max(Duration::from_secs(1))));
        e.min_announce = resp.min_interval.map(|m| later(now, m));
        if resp.complete.is_some() {
            e.scrape_complete = resp.complete;
        }
        if resp.incomplete.is_some() {
            e.scrape_incomplete = resp.incomplete;
        }
        if resp.downloaded.is_some() {
            e.scrape_downloaded = resp.downloaded;
        }
        let tier = e.tier;
        let front = self
            .entries
            .iter()
            .position(|x| x.tier == tier)
            .unwrap_or(i.0);
        let entry = self.entries.remove(i.0);
        self.entries.insert(front, entry);
        TrackerIndex(front)
    }

    /// Makes every tracker due now (the manual's `force_reannounce`), ignoring
    /// `min interval`; the tier order still decides which one is asked.
    pub fn force_announce(&mut self, now: Instant) {
        for e in &mut self.entries {
            e.next_announce = Some(now);
            e.min_announce = None;
        }
    }

    /// Records a failed announce: counts it, keeps the error and message, and backs the
    /// tracker off so the next one in order is tried.
    pub fn on_failure(&mut self, now: Instant, i: TrackerIndex, error: Error) {
        let Some(e) = self.entries.get_mut(i.0) else {
            return;
        };
        e.updating = false;
        e.fails = e.fails.saturating_add(1);
        if let Error::TrackerFailure { message } = &error {
            e.message.clone_from(message);
        }
        e.last_error = Some(error);
        let backoff = self
            .retry_base
            .saturating_mul(e.fails.saturating_mul(e.fails))
            .min(Duration::from_secs(3600));
        e.next_announce = Some(later(now, backoff));
    }

    /// Records scrape counts for a tracker.
    pub fn on_scrape(&mut self, i: TrackerIndex, s: &ScrapeEntry) {
        if let Some(e) = self.entries.get_mut(i.0) {
            e.scrape_complete = Some(s.complete);
            e.scrape_incomplete = Some(s.incomplete);
            e.scrape_downloaded = Some(s.downloaded);
        }
    }

    /// When some tracker next becomes due (`None` if one is updating or none can
    /// announce).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.entries.iter().any(|e| e.updating) {
            return None;
        }
        self.entries
            .iter()
            .filter(|e| e.can_announce())
            .filter_map(|e| e.next_announce)
            .min()
    }
}

/// `now + d` with `d` cut to [`limits::MAX_ANNOUNCE_INTERVAL`]; never overflows (an `Instant`
/// too close to its end stays at `now`).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(limits::MAX_ANNOUNCE_INTERVAL))
        .unwrap_or(now)
}
