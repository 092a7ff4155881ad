//! Pretty-prints any bencoded file: `cargo run -p lt-bencode --example decode -- FILE`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: decode FILE")?;
    let bytes = std::fs::read(path)?;
    let (doc, used) = lt_bencode::decode_prefix(&bytes)?;
    println!("{:#?}", doc.root());
    if let Some(v) = doc.non_canonical() {
        println!("non-canonical: {} at byte {}", v.reason, v.offset);
    }
    if used != bytes.len() {
        println!("{} trailing bytes", bytes.len() - used);
    }
    Ok(())
}
