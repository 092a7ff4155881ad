//! `Engine::clear_error`: a torrent paused by an error starts again once it is cleared.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use lt_core::PeerId;
use lt_engine::{
    Action, AddTorrent, DiskDone, DiskError, DiskErrorKind, DiskJob, Engine, Input, Settings,
};
use lt_metainfo::{CreateTorrent, TorrentInfo};

#[test]
fn clear_error_starts_a_torrent_its_error_paused() {
    let bytes = CreateTorrent::from_memory("e.bin", vec![1; 100_000])
        .piece_size(16 * 1024)
        .generate()
        .unwrap();
    let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
    let now = Instant::now();
    let mut engine = Engine::new(Settings::default(), PeerId::new([2; 20]), [1; 32], now);
    let id = engine.add_torrent(now, AddTorrent::new(info)).unwrap();
    while let Some(a) = engine.poll_action() {
        if let Action::Disk(DiskJob::Check { torrent, .. }) = a {
            let error = DiskError::new(DiskErrorKind::Other, "cannot open e.bin");
            let done = DiskDone::Checked {
                torrent,
                result: Err(error),
            };
            let _ = engine.handle_input(now, Input::Disk(done));
        }
    }
    let s = engine.status(now, id).unwrap();
    assert!(s.paused && s.error.is_some(), "{s:?}");
    engine.clear_error(now, id);
    let s = engine.status(now, id).unwrap();
    assert!(!s.paused && s.error.is_none(), "{s:?}");
    // Clearing again changes nothing.
    engine.clear_error(now, id);
    assert!(!engine.status(now, id).unwrap().paused);
}
