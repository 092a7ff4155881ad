//! Rechecks a torrent's files on disk and prints how many pieces verified.
//!
//! `cargo run -p lt-storage --example recheck -- file.torrent save_path`

use lt_metainfo::TorrentInfo;
use lt_storage::{FsOptions, FsStorage, check_files};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(torrent), Some(save_path)) = (args.next(), args.next()) else {
        eprintln!("usage: recheck <file.torrent> <save_path>");
        std::process::exit(2);
    };
    let info = TorrentInfo::from_bytes(&std::fs::read(torrent)?)?;
    let storage = FsStorage::new(info.files().clone(), save_path, FsOptions::default())?;
    let have = check_files(&storage, &info, 0)?;
    println!(
        "{} of {} pieces verified",
        have.count_ones(),
        info.num_pieces()
    );
    Ok(())
}
