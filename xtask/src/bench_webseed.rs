//! `cargo xtask bench webseed`: one file (default 1 GiB, 1 MiB pieces, v1) on /dev/shm,
//! served by nginx on loopback, downloaded from that web seed alone by lt (`lt download`,
//! release build), by libtorrent (`tests/python/lt_peer.py`) and fetched by curl (a ceiling:
//! it neither hashes nor splits the file into pieces), `--runs` times each, the three
//! interleaved within each run. The torrent names the server in its `url-list`, so both
//! clients find it the same way. Reported per client: the median rate (lt and libtorrent:
//! payload over their time from adding the torrent to completion, as each reports it; curl:
//! the file over the process's run) and the median CPU seconds of the downloader. Each
//! download is checked byte for byte and deleted before the next.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::bench::{libtorrent_rate, lt_rate, median, watch_until_exit};
use crate::swarm::{
    DEBIAN_PYTHON, Proc, Scratch, build_release, files_equal, lt_peer_script,
    require_python_libtorrent, secs, write_random_file,
};
use crate::system_deps::find_program;

/// Options of `cargo xtask bench webseed`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WebseedArgs {
    /// Payload size in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Piece size in KiB.
    #[arg(long, default_value_t = 1024)]
    piece_kib: u32,
    /// Runs of each client.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds one download may take.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Lt,
    Libtorrent,
    Curl,
}

impl Client {
    const ALL: [Self; 3] = [Self::Lt, Self::Libtorrent, Self::Curl];

    const fn name(self) -> &'static str {
        match self {
            Self::Lt => "lt",
            Self::Libtorrent => "libtorrent",
            Self::Curl => "curl",
        }
    }
}

/// nginx serving `root` on a free loopback port, with its own configuration under `dir`.
fn start_nginx(dir: &Path, root: &Path) -> Result<(Proc, u16)> {
    let nginx = find_program("nginx").context("nginx is missing: apt-get install nginx-light")?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  sendfile on;\n\
         gzip off;\n  keepalive_requests 100000;\n\
         server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n}}\n",
        root = root.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let p = Proc::spawn(
        "nginx",
        Command::new(nginx)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null()),
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nginx did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((p, port))
}

pub(crate) fn run(args: &WebseedArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("nothing to run");
    }
    require_python_libtorrent()?;
    let curl = find_program("curl").context("curl is missing: apt-get install curl")?;
    let bins = build_release(&[("lt-cli", "lt")])?;
    let lt = &bins[0];
    let scratch = Scratch::new("lt-bench-webseed", args.keep)?;
    let dir = &scratch.path;
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    let file = www.join("payload.bin");
    let bytes = args.size_mib << 20;
    write_random_file(&file, bytes, 0x5eed)?;
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let (nginx, port) = start_nginx(&nginx_dir, &www)?;
    let url = format!("http://127.0.0.1:{port}/");
    let torrent = dir.join("payload.torrent");
    let status = Command::new(lt)
        .arg("create")
        .arg(&file)
        .arg("-o")
        .arg(&torrent)
        .args(["--v1", "--piece-size", &format!("{}K", args.piece_kib)])
        .args(["--web-seed", &url])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("lt create failed");
    }
    println!(
        "bench webseed: {} MiB, {} KiB pieces, from nginx at {url}, {} runs",
        args.size_mib, args.piece_kib, args.runs
    );
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); Client::ALL.len()];
    for run in 0..args.runs {
        for (i, client) in Client::ALL.into_iter().enumerate() {
            let out = dir.join("out");
            if out.exists() {
                std::fs::remove_dir_all(&out)?;
            }
            std::fs::create_dir_all(&out)?;
            let started = Instant::now();
            let mut p = match client {
                Client::Lt => Proc::spawn(
                    "lt download",
                    Command::new(lt)
                        .arg("download")
                        .arg(&torrent)
                        .arg("-o")
                        .arg(&out)
                        .args(["--json", "--no-dht"]),
                )?,
                Client::Libtorrent => Proc::spawn(
                    "libtorrent download",
                    Command::new(DEBIAN_PYTHON)
                        .arg(lt_peer_script())
                        .arg("download")
                        .arg("--torrent")
                        .arg(&torrent)
                        .arg("--save")
                        .arg(&out)
                        .args(["--max-time", &args.timeout.to_string()]),
                )?,
                Client::Curl => Proc::spawn(
                    "curl",
                    Command::new(&curl)
                        .args(["-s", "-f", "-o"])
                        .arg(out.join("payload.bin"))
                        .arg(format!("{url}payload.bin")),
                )?,
            };
            let watched = watch_until_exit(&p, nginx.pid(), secs(args.timeout))?;
            let wall = started.elapsed().as_secs_f64();
            let status = p.reap()?;
            if !status.success() {
                bail!(
                    "{} exited with {status}; last lines:\n{}",
                    client.name(),
                    p.transcript(30)
                );
            }
            #[allow(clippy::cast_precision_loss)]
            let whole = bytes as f64 / 1e6 / wall;
            let rate = match client {
                Client::Lt => lt_rate(&mut p)?,
                Client::Libtorrent => libtorrent_rate(&mut p)?,
                Client::Curl => whole,
            };
            files_equal(&file, &out.join("payload.bin"))?;
            std::fs::remove_dir_all(&out)?;
            println!(
                "run {}: {:<10} {rate:8.1} MB/s  cpu {:5.2} s",
                run + 1,
                client.name(),
                watched.leecher_cpu
            );
            results[i].push((rate, watched.leecher_cpu));
        }
    }
    drop(nginx);
    let med: Vec<(f64, f64)> = results
        .iter()
        .map(|r| (median(r.iter().map(|x| x.0)), median(r.iter().map(|x| x.1))))
        .collect();
    println!("median of {} runs:", args.runs);
    for (client, (rate, cpu)) in Client::ALL.iter().zip(&med) {
        println!("  {:<10} {rate:8.1} MB/s  cpu {cpu:5.2} s", client.name());
    }
    println!(
        "  lt / libtorrent x{:.2} (target >= 1.2), lt / curl x{:.2} (target >= 0.5)",
        med[0].0 / med[1].0,
        med[0].0 / med[2].0
    );
    Ok(())
}
