//! `lt create`: hash a file or a directory into a `.torrent`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("version").args(["v1", "v2", "hybrid"])))]
pub(crate) struct CreateArgs {
    /// The file or directory to share.
    path: PathBuf,
    /// Where to write the .torrent file.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// A tracker announce URL. Each --tracker is its own tier (BEP 12), in the order given;
    /// separate URLs with commas to put them in one tier.
    #[arg(short, long, value_name = "URL")]
    tracker: Vec<String>,
    /// Bytes per piece, optionally with a K or M suffix (KiB, MiB) [default: chosen from the
    /// total size, as libtorrent does]. v2 and hybrid torrents need a power of two of at least
    /// 16K.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    piece_size: Option<u32>,
    /// A BitTorrent v1 torrent (BEP 3) only.
    #[arg(long)]
    v1: bool,
    /// A BitTorrent v2 torrent (BEP 52) only.
    #[arg(long)]
    v2: bool,
    /// A hybrid v1 + v2 torrent, with pad files (the default).
    #[arg(long)]
    hybrid: bool,
    /// Mark the torrent private (BEP 27): peers only from its trackers.
    #[arg(long)]
    private: bool,
    /// Make it an SSL torrent: embed this root (CA) certificate, PEM. Its peers then talk
    /// only TLS, each with a certificate this root signed.
    #[arg(long, value_name = "FILE")]
    ssl_cert: Option<PathBuf>,
    /// A web seed URL (BEP 19); may be repeated.
    #[arg(long, value_name = "URL")]
    web_seed: Vec<String>,
    /// A comment to store in the torrent.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// Hashing threads [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

pub(crate) fn run(args: &CreateArgs) -> Result<()> {
    let version = if args.v1 {
        TorrentVersion::V1
    } else if args.v2 {
        TorrentVersion::V2
    } else {
        TorrentVersion::Hybrid
    };
    if args.output.is_dir() {
        bail!(
            "{} is a directory; -o takes the .torrent file to write",
            args.output.display()
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut builder = CreateTorrent::new(&args.path)
        .version(version)
        .private(args.private)
        .creator(concat!("lt ", env!("CARGO_PKG_VERSION")))
        .creation_date(now);
    let mut tier: u8 = 0;
    for group in &args.tracker {
        let urls: Vec<&str> = group
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            continue;
        }
        for url in urls {
            builder = builder.tracker_tier(url, tier);
        }
        tier = tier.checked_add(1).context("more than 256 tracker tiers")?;
    }
    for url in &args.web_seed {
        builder = builder.web_seed(url);
    }
    if let Some(comment) = &args.comment {
        builder = builder.comment(comment);
    }
    if let Some(path) = &args.ssl_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            bail!("{} holds no PEM certificate", path.display());
        }
        builder = builder.ssl_cert(pem);
    }
    if let Some(size) = args.piece_size {
        builder = builder.piece_size(size);
    }
    if let Some(threads) = args.threads {
        builder = builder.threads(usize::from(threads));
    }

    let progress = Progress::new();
    let reporter = progress.clone();
    let bytes = builder
        .progress(move |done, total| reporter.update(done, total))
        .generate();
    progress.finish();
    let bytes =
        bytes.with_context(|| format!("cannot create a torrent of {}", args.path.display()))?;

    // Check what we wrote the way every reader will see it, before anyone gets it.
    let torrent = TorrentInfo::from_bytes(&bytes).context("the created torrent does not load")?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "wrote {}: {} files, {} in {} pieces of {}",
        args.output.display(),
        torrent
            .files()
            .files()
            .iter()
            .filter(|f| !f.is_pad())
            .count(),
        crate::info::human_size(
            torrent
                .files()
                .files()
                .iter()
                .filter(|f| !f.is_pad())
                .map(|f| f.size)
                .sum()
        ),
        torrent.num_pieces(),
        crate::info::human_size(u64::from(torrent.piece_length())),
    );
    let ih = torrent.info_hash();
    let mut result = String::new();
    if let Some(v1) = ih.v1_hash() {
        result.push_str(&format!("info-hash v1: {}\n", v1.to_hex()));
    }
    if let Some(v2) = ih.v2_hash() {
        result.push_str(&format!("info-hash v2: {}\n", v2.to_hex()));
    }
    crate::print_stdout(&result)
}

/// Hashing progress on stderr: a bar on a terminal, otherwise a plain line every 10%.
#[derive(Clone)]
enum Progress {
    Bar(ProgressBar),
    Lines(std::sync::Arc<std::sync::atomic::AtomicU64>),
}

impl Progress {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "hashing {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::Bar(bar)
        } else {
            Self::Lines(std::sync::Arc::default())
        }
    }

    fn update(&self, done: u64, total: u64) {
        match self {
            Self::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Self::Lines(last_decile) => {
                let decile = done.saturating_mul(10).checked_div(total).unwrap_or(10);
                let previous = last_decile.fetch_max(decile, std::sync::atomic::Ordering::Relaxed);
                if decile > previous {
                    eprintln!("hashed {}% ({done} of {total} bytes)", decile * 10);
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// `16384`, `16K`, `4M` (binary units) as a piece size.
fn parse_size(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (digits, multiplier) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1u64),
        Some((at, _)) => {
            let unit = s[at..].to_ascii_lowercase();
            let multiplier = match unit.as_str() {
                "k" | "kb" | "kib" => 1u64 << 10,
                "m" | "mb" | "mib" => 1u64 << 20,
                _ => return Err(format!("unknown unit `{}` (use K or M)", &s[at..])),
            };
            (&s[..at], multiplier)
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes"))?;
    n.checked_mul(multiplier)
        .and_then(|b| u32::try_from(b).ok())
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("`{s}` is not a piece size between 1 byte and 4 GiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16384"), Ok(16384));
        assert_eq!(parse_size("16K"), Ok(16384));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4G").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("8192M").is_err());
    }
}
