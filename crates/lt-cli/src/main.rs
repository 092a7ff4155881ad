//! `lt`, the command-line front end of the lt BitTorrent engine.
//!
//! ```text
//! lt info <file.torrent> [--json]      name, info-hashes, pieces, trackers, web seeds, files
//! lt create <path> -o <out.torrent>    hash files into a v1, v2 or hybrid torrent
//! lt magnet <file.torrent>             print the torrent's magnet URI
//! lt download <file.torrent> -o <dir>  download (and with --seed, keep seeding)
//! lt seed <file.torrent> --data <dir>  seed data already on disk
//! ```
//!
//! Results (and `--json`) go to stdout; progress and errors go to stderr. The exit status is
//! 0 on success, 1 when the command failed and 2 for a usage error.
#![forbid(unsafe_code)]

mod create;
mod info;
mod transfer;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use lt_metainfo::{LoadLimits, TorrentInfo};

/// Download, seed, inspect and create BitTorrent torrents (v1, v2 and hybrid).
#[derive(Debug, Parser)]
#[command(name = "lt", version, about, max_term_width = 100)]
struct Cli {
    /// Log the engine's decisions to stderr: -v connections, chokes, bans and announces
    /// (debug), -vv every peer event too (trace). `RUST_LOG` (e.g.
    /// `RUST_LOG=lt_engine=debug`) overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a .torrent file holds: name, info-hashes, pieces, trackers and files.
    Info(info::InfoArgs),
    /// Create a .torrent file from a file or a directory.
    Create(create::CreateArgs),
    /// Print the magnet URI of a .torrent file.
    Magnet(MagnetArgs),
    /// Download a torrent from its trackers and the given peers.
    Download(transfer::DownloadArgs),
    /// Seed a torrent whose data is on disk.
    Seed(transfer::SeedArgs),
}

#[derive(Debug, clap::Args)]
struct MagnetArgs {
    /// The .torrent file.
    torrent: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match &cli.command {
        Command::Info(args) => info::run(args),
        Command::Create(args) => create::run(args),
        Command::Magnet(args) => magnet(args),
        Command::Download(args) => transfer::download(args),
        Command::Seed(args) => transfer::seed(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lt: error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with `: `, leaving out a cause whose text the message
/// already ends with (error types that print their source inside their own message).
fn error_chain(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn magnet(args: &MagnetArgs) -> Result<()> {
    let torrent = load_torrent(&args.torrent)?;
    print_stdout(&format!("{}\n", torrent.magnet_link().to_uri()))
}

/// Writes a command's result to stdout.
///
/// # Errors
/// When stdout cannot be written; [`main`] exits quietly when the reason is a closed pipe
/// (`lt info x | head -1`), since the reader has what it wanted.
pub(crate) fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Reads and parses a `.torrent` file, with the file name in every error.
///
/// A file larger than [`LoadLimits::max_buffer_size`] is refused before it is read.
pub(crate) fn load_torrent(path: &Path) -> Result<TorrentInfo> {
    let max = LoadLimits::default().max_buffer_size;
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if usize::try_from(len).map_or(true, |len| len > max) {
        bail!(
            "{} is {len} bytes, larger than any torrent lt loads ({max} bytes)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    TorrentInfo::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid torrent", path.display()))
}

/// Installs the tracing subscriber: `RUST_LOG` when set, else warnings, or with `-v` the
/// lt crates' debug events, with `-vv` their trace events.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,lt_engine=debug,lt_session=debug,lt_wire=debug,lt_utp=debug,lt_dht=debug",
        _ => "warn,lt_engine=trace,lt_session=trace,lt_wire=trace,lt_utp=trace,lt_dht=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_skips_repeated_causes() {
        let inner = std::io::Error::other("disk on fire");
        let err = anyhow::Error::new(inner)
            .context("cannot read x: disk on fire")
            .context("loading");
        assert_eq!(error_chain(&err), "loading: cannot read x: disk on fire");
        let err = anyhow::anyhow!("root").context("outer");
        assert_eq!(error_chain(&err), "outer: root");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
