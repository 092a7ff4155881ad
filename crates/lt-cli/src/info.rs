//! `lt info`: what a `.torrent` holds, for people or (with `--json`) for scripts.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use lt_metainfo::{TorrentInfo, WebSeedKind};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub(crate) struct InfoArgs {
    /// The .torrent file.
    torrent: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &InfoArgs) -> Result<()> {
    let torrent = crate::load_torrent(&args.torrent)?;
    if args.json {
        crate::print_stdout(&format!("{}\n", to_json(&torrent)))
    } else {
        crate::print_stdout(&to_text(&torrent))
    }
}

/// The `--json` object. Its field names are part of the command's contract (scripts and
/// tests read them), so they only ever gain new fields.
///
/// - `info_hash_v1` / `info_hash_v2`: lowercase hex, `null` when the torrent lacks that
///   version;
/// - `total_size`: the sum of all file sizes, pad files included (the torrent's byte
///   stream); `files[].pad` marks the BEP 47 pad files;
/// - `web_seeds`: BEP 19 `url-list` URLs; `http_seeds`: BEP 17 `httpseeds` URLs;
/// - `creation_date`: seconds since the Unix epoch, or `null`.
pub(crate) fn to_json(t: &TorrentInfo) -> Value {
    let ih = t.info_hash();
    let files: Vec<Value> = t
        .files()
        .files()
        .iter()
        .map(|f| json!({ "path": f.path_string(), "size": f.size, "pad": f.is_pad() }))
        .collect();
    json!({
        "name": t.name(),
        "info_hash_v1": ih.v1_hash().map(|h| h.to_hex()),
        "info_hash_v2": ih.v2_hash().map(|h| h.to_hex()),
        "piece_length": t.piece_length(),
        "num_pieces": t.num_pieces(),
        "total_size": t.total_size(),
        "num_files": t.files().num_files(),
        "private": t.is_private(),
        "ssl": t.ssl_cert().is_some(),
        "trackers": t
            .trackers()
            .iter()
            .map(|a| json!({ "url": a.url, "tier": a.tier }))
            .collect::<Vec<_>>(),
        "web_seeds": web_seeds(t, WebSeedKind::Url),
        "http_seeds": web_seeds(t, WebSeedKind::Http),
        "files": files,
        "comment": t.comment(),
        "created_by": t.created_by(),
        "creation_date": t.creation_date(),
        "magnet": t.magnet_link().to_uri(),
    })
}

fn web_seeds(t: &TorrentInfo, kind: WebSeedKind) -> Vec<&str> {
    t.web_seeds()
        .iter()
        .filter(|w| w.kind == kind)
        .map(|w| w.url.as_str())
        .collect()
}

/// The human-readable report.
fn to_text(t: &TorrentInfo) -> String {
    let mut out = String::new();
    let ih = t.info_hash();
    // `write!` to a String cannot fail.
    let mut line = |label: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{label:<15}{value}");
    };
    line("name:", &t.name());
    let none = "-".to_owned();
    line(
        "info-hash v1:",
        &ih.v1_hash().map_or_else(|| none.clone(), |h| h.to_hex()),
    );
    line(
        "info-hash v2:",
        &ih.v2_hash().map_or_else(|| none.clone(), |h| h.to_hex()),
    );
    let version = match (ih.has_v1(), ih.has_v2()) {
        (true, true) => "hybrid (v1 + v2)",
        (false, true) => "v2",
        _ => "v1",
    };
    line("version:", &version);
    line(
        "piece length:",
        &format!(
            "{} ({})",
            t.piece_length(),
            human_size(u64::from(t.piece_length()))
        ),
    );
    line("pieces:", &t.num_pieces());
    line(
        "total size:",
        &format!("{} ({})", t.total_size(), human_size(t.total_size())),
    );
    line("private:", &if t.is_private() { "yes" } else { "no" });
    let ssl = if t.ssl_cert().is_some() {
        "yes (peers only over TLS, with a certificate its root signed)"
    } else {
        "no"
    };
    line("SSL torrent:", &ssl);
    line(
        "created by:",
        &t.created_by().map_or_else(|| none.clone(), str::to_owned),
    );
    line(
        "creation date:",
        &t.creation_date()
            .map_or_else(|| none.clone(), |d| format!("{} ({d})", utc_date_time(d))),
    );
    line(
        "comment:",
        &t.comment().map_or_else(|| none.clone(), str::to_owned),
    );

    let _ = writeln!(
        out,
        "trackers:{}",
        if t.trackers().is_empty() { " -" } else { "" }
    );
    for a in t.trackers() {
        let _ = writeln!(out, "  tier {:<3} {}", a.tier, a.url);
    }
    let _ = writeln!(
        out,
        "web seeds:{}",
        if t.web_seeds().is_empty() { " -" } else { "" }
    );
    for w in t.web_seeds() {
        let kind = match w.kind {
            WebSeedKind::Url => "url ",
            WebSeedKind::Http => "http",
        };
        let _ = writeln!(out, "  {kind} {}", w.url);
    }

    // Pad files are alignment, not content: counted here, listed only by --json.
    let files = t.files().files();
    let pads = files.iter().filter(|f| f.is_pad()).count();
    let _ = writeln!(
        out,
        "files:         {} (and {} pad files)",
        files.len() - pads,
        pads
    );
    let width = files
        .iter()
        .map(|f| f.size.to_string().len())
        .max()
        .unwrap_or(1);
    for f in files.iter().filter(|f| !f.is_pad()) {
        let _ = writeln!(out, "  {:>width$}  {}", f.size, f.path_string());
    }
    let _ = writeln!(out, "magnet:        {}", t.magnet_link().to_uri());
    out
}

/// `1.5 MiB`-style size.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut whole = bytes;
    while whole >= 1024 && unit + 1 < UNITS.len() {
        whole /= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    // Lossy on purpose: one decimal for display.
    #[allow(clippy::cast_precision_loss, reason = "display only")]
    let value = bytes as f64 / (1u64 << (10 * unit)) as f64;
    format!("{value:.1} {}", UNITS[unit])
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch (proleptic Gregorian).
fn utc_date_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date_time(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(16 << 20), "16.0 MiB");
    }
}
