//! What TLS costs an SSL torrent's peer per core: rustls (ring, as lt-session uses it)
//! sealing and opening 256 MiB of payload in 16 KiB writes between a client and a server
//! in memory, for each TLS 1.3 cipher suite, beside `openssl speed -evp` for the same
//! cipher at 16 KiB on one core. Run with `cargo bench -p lt-session --bench tls`; it
//! prints the median of 5 runs per suite.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const TOTAL: usize = 256 << 20;
const CHUNK: usize = 16 << 10;
const RUNS: usize = 5;

fn configs(suite: rustls::SupportedCipherSuite) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der: CertificateDer<'static> = cert.der().clone();
    let mut roots = RootCertStore::empty();
    roots.add(der.clone()).unwrap();
    let mut p = provider::default_provider();
    p.cipher_suites = vec![suite];
    let p = Arc::new(p);
    let client = ClientConfig::builder_with_provider(Arc::clone(&p))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let server = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    (Arc::new(client), Arc::new(server))
}

/// Seconds to seal (server) and to open (client) `TOTAL` bytes.
fn run(suite: rustls::SupportedCipherSuite) -> (f64, f64) {
    let (cc, sc) = configs(suite);
    let mut client = ClientConnection::new(cc, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut server = ServerConnection::new(sc).unwrap();
    let mut wire = Vec::with_capacity(64 << 10);
    while client.is_handshaking() || server.is_handshaking() {
        wire.clear();
        client.write_tls(&mut wire).unwrap();
        server.read_tls(&mut &wire[..]).unwrap();
        server.process_new_packets().unwrap();
        wire.clear();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut &wire[..]).unwrap();
        client.process_new_packets().unwrap();
    }
    let payload = vec![0x5a_u8; CHUNK];
    let mut out = vec![0u8; CHUNK];
    let (mut seal, mut open) = (Duration::ZERO, Duration::ZERO);
    let mut received = 0;
    for _ in 0..TOTAL / CHUNK {
        let t = Instant::now();
        server.writer().write_all(&payload).unwrap();
        wire.clear();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        seal += t.elapsed();
        let t = Instant::now();
        let mut rd = &wire[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
            loop {
                match client.reader().read(&mut out) {
                    Ok(0) => break,
                    Ok(n) => received += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        open += t.elapsed();
    }
    assert_eq!(received, TOTAL);
    (seal.as_secs_f64(), open.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `openssl speed -evp <cipher> -bytes 16384` on one core, MB/s.
fn openssl_speed(cipher: &str) -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", cipher, "-bytes", "16384", "-seconds", "2"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| {
        l.to_ascii_lowercase()
            .starts_with(&cipher.to_ascii_lowercase())
    })?;
    let k: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    // openssl reports 1000s of bytes per second.
    Some(k * 1000.0 / 1e6)
}

fn main() {
    let suites = [
        (
            provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
            "aes-256-gcm",
        ),
        (
            provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
            "aes-128-gcm",
        ),
        (
            provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            "chacha20-poly1305",
        ),
    ];
    #[allow(clippy::cast_precision_loss)]
    let mb = TOTAL as f64 / 1e6;
    println!("rustls (ring), TLS 1.3, 256 MiB in 16 KiB writes, one core, median of {RUNS}:");
    for (suite, openssl) in suites {
        let runs: Vec<(f64, f64)> = (0..RUNS).map(|_| run(suite)).collect();
        let seal = median(runs.iter().map(|r| r.0).collect());
        let open = median(runs.iter().map(|r| r.1).collect());
        let reference = openssl_speed(openssl)
            .map_or_else(|| "not available".to_owned(), |v| format!("{v:.0} MB/s"));
        println!(
            "  {:<32} seal {:6.0} MB/s  open {:6.0} MB/s  | openssl speed -evp {openssl}: {reference}",
            format!("{:?}", suite.suite()),
            mb / seal,
            mb / open,
        );
    }
}
