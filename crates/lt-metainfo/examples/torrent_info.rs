//! Prints what a `.torrent` holds: `cargo run -p lt-metainfo --example torrent_info -- FILE`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: torrent_info FILE.torrent")?;
    let t = lt_metainfo::TorrentInfo::from_bytes(&std::fs::read(path)?)?;
    println!("name:   {}", t.name());
    println!("hash:   {}", t.info_hash());
    println!("pieces: {} x {} bytes", t.num_pieces(), t.piece_length());
    for f in t.files().files().iter().filter(|f| !f.is_pad()) {
        println!("  {:>12}  {}", f.size, f.path_string());
    }
    println!("{}", t.magnet_link());
    Ok(())
}
