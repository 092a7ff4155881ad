//! `cargo xtask bench ssl`: the cost of SSL torrents (issue 23). One file (default 1 GiB,
//! 1 MiB pieces, v1) on /dev/shm, moved over loopback TCP from one seeder process to one
//! leecher process, `--runs` times each way, interleaved within each run:
//!
//! - lt to lt, plaintext (MSE off: `--encryption disabled` is not an lt flag, so the plain
//!   torrent's peers negotiate MSE's plaintext as lt does by default);
//! - lt to lt over TLS (an SSL torrent of the same file, certificates from `openssl`);
//! - libtorrent to libtorrent over TLS (`tests/python/lt_peer.py`, the same torrent and
//!   certificates).
//!
//! Per variant: the median rate the leecher reports (payload over its time from adding the
//! torrent to completion) and the median CPU seconds of the leecher, per GiB too. The
//! difference of the leecher's CPU with and without TLS is not the cipher's cost (the first
//! run here gave 0.09 s for 1 GiB, less than AES-256-GCM can decrypt in): TLS's 16 KiB
//! records change the reads around it. The cipher's own cost per core is measured by
//! `cargo bench -p lt-session --bench tls`, beside `openssl speed`, printed here too (TLS 1.3
//! between rustls peers, and between rustls and OpenSSL, settles on AES-256-GCM).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::bench::{libtorrent_listening, libtorrent_rate, lt_rate, median, watch_until_exit};
use crate::swarm::{
    DEBIAN_PYTHON, Proc, Scratch, Stream, build_release, files_equal, json_event, lt_peer_script,
    require_python_libtorrent, secs, write_random_file,
};

/// Options of `cargo xtask bench ssl`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SslArgs {
    /// Payload size in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Piece size in KiB.
    #[arg(long, default_value_t = 1024)]
    piece_kib: u32,
    /// Runs of each variant.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds one transfer may take.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    LtPlain,
    LtSsl,
    LibtorrentSsl,
}

impl Variant {
    const ALL: [Self; 3] = [Self::LtPlain, Self::LtSsl, Self::LibtorrentSsl];

    const fn name(self) -> &'static str {
        match self {
            Self::LtPlain => "lt -> lt plaintext",
            Self::LtSsl => "lt -> lt TLS",
            Self::LibtorrentSsl => "libtorrent -> libtorrent TLS",
        }
    }
}

/// Runs `openssl` with `args`.
fn openssl(args: &[&str]) -> Result<String> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run openssl: apt-get install openssl")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(p: &Path) -> Result<&str> {
    p.to_str().context("a path that is not UTF-8")
}

/// A certificate and its key.
type CertKey = (PathBuf, PathBuf);

/// The root certificate and two peer certificates naming `name` (seeder, leecher), and
/// Diffie-Hellman parameters for libtorrent; returns (root, [seeder, leecher], dh).
fn certificates(dir: &Path, name: &str) -> Result<(PathBuf, [CertKey; 2], PathBuf)> {
    let (root, root_key) = (dir.join("root.pem"), dir.join("root.key"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut req = vec!["req", "-x509"];
    req.extend(ec);
    req.extend(["-keyout", s(&root_key)?, "-out", s(&root)?, "-days", "2"]);
    req.extend(["-subj", "/CN=lt bench root"]);
    openssl(&req)?;
    let mut peers = Vec::new();
    for who in ["seeder", "leecher"] {
        let (cert, key, csr) = (
            dir.join(format!("{who}.pem")),
            dir.join(format!("{who}.key")),
            dir.join(format!("{who}.csr")),
        );
        let san = format!("subjectAltName=DNS:{name}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", s(&key)?, "-out", s(&csr)?, "-subj", "/CN=peer"]);
        req.extend(["-addext", &san]);
        openssl(&req)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr)?,
            "-CA",
            s(&root)?,
            "-CAkey",
            s(&root_key)?,
            "-CAcreateserial",
            "-out",
            s(&cert)?,
            "-days",
            "2",
            "-copy_extensions",
            "copy",
        ])?;
        peers.push((cert, key));
    }
    let dh = dir.join("dh.pem");
    openssl(&["dhparam", "-dsaparam", "-out", s(&dh)?, "2048"])?;
    let [seeder, leecher]: [CertKey; 2] =
        peers.try_into().map_err(|_| anyhow::anyhow!("two peers"))?;
    Ok((root, [seeder, leecher], dh))
}

/// `openssl speed -evp aes-256-gcm` at 16 KiB, one core, in MB/s.
fn openssl_aes_gcm() -> Result<f64> {
    let out = openssl(&[
        "speed",
        "-evp",
        "aes-256-gcm",
        "-bytes",
        "16384",
        "-seconds",
        "2",
    ])?;
    let line = out
        .lines()
        .find(|l| l.starts_with("AES-256-GCM") || l.starts_with("aes-256-gcm"))
        .context("no AES-256-GCM line from openssl speed")?;
    let k: f64 = line
        .split_whitespace()
        .last()
        .and_then(|v| v.trim_end_matches('k').parse().ok())
        .context("cannot parse openssl speed")?;
    // openssl reports 1000s of bytes per second.
    Ok(k * 1000.0 / 1e6)
}

struct Setup {
    lt: PathBuf,
    plain: PathBuf,
    ssl: PathBuf,
    seed_dir: PathBuf,
    certs: [CertKey; 2],
    dh: PathBuf,
}

/// Starts the seeder of `v`; returns it and the port to dial.
fn start_seeder(v: Variant, x: &Setup) -> Result<(Proc, u16)> {
    let (cert, key) = &x.certs[0];
    match v {
        Variant::LtPlain | Variant::LtSsl => {
            let torrent = if v == Variant::LtSsl {
                &x.ssl
            } else {
                &x.plain
            };
            let mut c = Command::new(&x.lt);
            c.arg("seed")
                .arg(torrent)
                .arg("--data")
                .arg(&x.seed_dir)
                .args(["--no-dht", "--tcp-only"]);
            if v == Variant::LtSsl {
                c.arg("--ssl-cert").arg(cert).arg("--ssl-key").arg(key);
            }
            let mut p = Proc::spawn("lt seed", &mut c)?;
            let line = p.wait_line(Stream::Stderr, secs(60), |l| {
                l.contains(if v == Variant::LtSsl {
                    "listening for SSL torrents on port "
                } else {
                    "listening on "
                })
            })?;
            let port = line
                .rsplit([' ', ':'])
                .next()
                .and_then(|p| p.parse().ok())
                .with_context(|| format!("cannot parse {line:?}"))?;
            p.wait_line(Stream::Stderr, secs(120), |l| l.contains("seeding "))?;
            Ok((p, port))
        }
        Variant::LibtorrentSsl => {
            let mut p = Proc::spawn(
                "libtorrent seed",
                Command::new(DEBIAN_PYTHON)
                    .arg(lt_peer_script())
                    .arg("seed")
                    .arg("--torrent")
                    .arg(&x.ssl)
                    .arg("--save")
                    .arg(&x.seed_dir)
                    .args([
                        "--transport",
                        "tcp",
                        "--seed-mode",
                        "--progress-interval",
                        "3600",
                    ])
                    .arg("--ssl-cert")
                    .arg(cert)
                    .arg("--ssl-key")
                    .arg(key)
                    .arg("--ssl-dh")
                    .arg(&x.dh),
            )?;
            let port = libtorrent_listening(&mut p, "ssl_port")?;
            p.wait_line(Stream::Stdout, secs(60), |l| {
                json_event(l).is_some_and(|v| v["event"] == "ready")
            })?;
            Ok((p, port))
        }
    }
}

/// One transfer of `v`: (rate MB/s, leecher CPU s).
fn one(v: Variant, x: &Setup, out: &Path, file: &Path, timeout: u64) -> Result<(f64, f64)> {
    let (seeder, port) = start_seeder(v, x)?;
    let (cert, key) = &x.certs[1];
    let peer = format!("127.0.0.1:{port}");
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    std::fs::create_dir_all(out)?;
    let mut p = match v {
        Variant::LtPlain | Variant::LtSsl => {
            let torrent = if v == Variant::LtSsl {
                &x.ssl
            } else {
                &x.plain
            };
            let mut c = Command::new(&x.lt);
            c.arg("download").arg(torrent).arg("-o").arg(out).args([
                "--json",
                "--no-dht",
                "--tcp-only",
                "--peer",
                &peer,
            ]);
            if v == Variant::LtSsl {
                c.arg("--ssl-cert").arg(cert).arg("--ssl-key").arg(key);
            }
            Proc::spawn("lt download", &mut c)?
        }
        Variant::LibtorrentSsl => Proc::spawn(
            "libtorrent download",
            Command::new(DEBIAN_PYTHON)
                .arg(lt_peer_script())
                .arg("download")
                .arg("--torrent")
                .arg(&x.ssl)
                .arg("--save")
                .arg(out)
                .args(["--transport", "tcp", "--peer", &peer])
                .args(["--max-time", &timeout.to_string()])
                .arg("--ssl-cert")
                .arg(cert)
                .arg("--ssl-key")
                .arg(key)
                .arg("--ssl-dh")
                .arg(&x.dh),
        )?,
    };
    let watched = watch_until_exit(&p, seeder.pid(), secs(timeout))?;
    let status = p.reap()?;
    if !status.success() {
        bail!(
            "{} exited with {status}; last lines:\n{}",
            v.name(),
            p.transcript(30)
        );
    }
    let rate = match v {
        Variant::LibtorrentSsl => libtorrent_rate(&mut p)?,
        _ => lt_rate(&mut p)?,
    };
    let name = file.file_name().context("no file name")?;
    files_equal(file, &out.join(name))?;
    std::fs::remove_dir_all(out)?;
    drop(seeder);
    Ok((rate, watched.leecher_cpu))
}

pub(crate) fn run(args: &SslArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("nothing to run");
    }
    require_python_libtorrent()?;
    let bins = build_release(&[("lt-cli", "lt")])?;
    let scratch = Scratch::new("lt-bench-ssl", false)?;
    let dir = &scratch.path;
    let seed_dir = dir.join("seed");
    std::fs::create_dir_all(&seed_dir)?;
    let name = "payload.bin";
    let file = seed_dir.join(name);
    let bytes = args.size_mib << 20;
    write_random_file(&file, bytes, 0x55_1e)?;
    let (root, certs, dh) = certificates(dir, name)?;
    let lt = bins[0].clone();
    let piece = format!("{}K", args.piece_kib);
    let mut torrents = Vec::new();
    for (t, ssl) in [("plain.torrent", false), ("ssl.torrent", true)] {
        let path = dir.join(t);
        let mut c = Command::new(&lt);
        c.arg("create")
            .arg(&file)
            .arg("-o")
            .arg(&path)
            .args(["--v1", "--piece-size", &piece]);
        if ssl {
            c.arg("--ssl-cert").arg(&root);
        }
        if !c.stdout(Stdio::null()).status()?.success() {
            bail!("lt create failed");
        }
        torrents.push(path);
    }
    let setup = Setup {
        lt,
        plain: torrents[0].clone(),
        ssl: torrents[1].clone(),
        seed_dir,
        certs,
        dh,
    };
    println!(
        "bench ssl: {} MiB, {} KiB pieces, loopback TCP, {} runs",
        args.size_mib, args.piece_kib, args.runs
    );
    let aes = openssl_aes_gcm()?;
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); Variant::ALL.len()];
    let out = dir.join("out");
    for run in 0..args.runs {
        for (i, v) in Variant::ALL.into_iter().enumerate() {
            let (rate, cpu) = one(v, &setup, &out, &file, args.timeout)?;
            println!(
                "run {}: {:<30} {rate:8.1} MB/s  cpu {cpu:5.2} s",
                run + 1,
                v.name()
            );
            results[i].push((rate, cpu));
        }
    }
    let med: Vec<(f64, f64)> = results
        .iter()
        .map(|r| (median(r.iter().map(|x| x.0)), median(r.iter().map(|x| x.1))))
        .collect();
    println!("median of {} runs (leecher CPU seconds):", args.runs);
    for (v, (rate, cpu)) in Variant::ALL.iter().zip(&med) {
        println!("  {:<30} {rate:8.1} MB/s  cpu {cpu:5.2} s", v.name());
    }
    println!(
        "  lt TLS / lt plaintext x{:.2} (target >= 0.8), lt TLS / libtorrent TLS x{:.2} (target > 1)",
        med[1].0 / med[0].0,
        med[1].0 / med[2].0
    );
    #[allow(clippy::cast_precision_loss)]
    let gib = bytes as f64 / f64::from(1u32 << 30);
    println!(
        "  leecher CPU s per GiB: lt plaintext {:.2}, lt TLS {:.2}, libtorrent TLS {:.2}",
        med[0].1 / gib,
        med[1].1 / gib,
        med[2].1 / gib
    );
    println!(
        "  openssl speed -evp aes-256-gcm, 16 KiB, 1 core: {aes:.0} MB/s \
         (rustls's own: cargo bench -p lt-session --bench tls)"
    );
    Ok(())
}
