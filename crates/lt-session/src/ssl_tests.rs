//! The SSL torrent rules on certificates made here with rcgen: the name rule of the manual,
//! the SNI, and which certificates `TorrentTls::new` takes as ours. The same rules between
//! two live peers, on certificates the openssl command makes, are in
//! `tests/tests/ssl_torrents.rs`.
#![allow(clippy::unwrap_used)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

use super::*;

/// A root certificate and its key.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(cn: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A peer certificate signed by `ca`, with these dNSNames and Common Names; its PEM and
/// its key's.
fn peer(ca: &Ca, dns: &[&str], cns: &[&str], expired: bool) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = dns
        .iter()
        .map(|d| SanType::DnsName((*d).try_into().unwrap()))
        .collect();
    for cn in cns {
        params.distinguished_name.push(DnType::CommonName, *cn);
    }
    if expired {
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn der(pem: &str) -> Vec<u8> {
    certificates(pem.as_bytes()).unwrap()[0].to_vec()
}

const HASH: Sha1Hash = Sha1Hash::new([0xab; 20]);

#[test]
fn a_certificate_names_the_torrent_by_a_dns_name_or_the_last_common_name() {
    let root = ca("publisher");
    let names = |dns: &[&str], cns: &[&str]| {
        let (pem, _) = peer(&root, dns, cns, false);
        names_torrent(&der(&pem), "movie")
    };
    // A SubjectAltName dNSName equal to the name, or `*`.
    assert!(names(&["movie"], &[]));
    assert!(names(&["other", "movie"], &[]));
    assert!(names(&["*"], &[]));
    // Byte for byte: no case folding, no wildcard but a lone `*`.
    assert!(!names(&["Movie"], &[]));
    assert!(!names(&["*.movie"], &[]));
    assert!(!names(&["movie.example"], &[]));
    // No dNSName matches: the last Common Name decides, even beside other dNSNames.
    assert!(names(&[], &["movie"]));
    assert!(names(&["other"], &["movie"]));
    assert!(names(&[], &["other", "movie"]));
    assert!(!names(&[], &["movie", "other"]));
    assert!(names(&[], &["*"]));
    // Neither.
    assert!(!names(&["other"], &["other"]));
    assert!(!names(&[], &[]));
    // Not a certificate.
    assert!(!names_torrent(b"not DER", "movie"));
}

#[test]
fn the_sni_is_the_hex_info_hash() {
    assert_eq!(sni_hash(&HASH.to_hex()), Some(HASH));
    // libtorrent reads the first 40 characters.
    assert_eq!(sni_hash(&format!("{}ff", HASH.to_hex())), Some(HASH));
    assert_eq!(sni_hash(&HASH.to_hex()[..39]), None);
    assert_eq!(sni_hash(&"zz".repeat(20)), None);
    assert_eq!(sni_hash(""), None);
}

#[test]
fn our_certificate_must_pass_the_rule_peers_check() {
    let root = ca("publisher");
    let other = ca("someone else");
    let ok = |(cert, key): (String, String)| {
        TorrentTls::new(
            root.pem.as_bytes(),
            "movie",
            &HASH,
            cert.as_bytes(),
            key.as_bytes(),
            None,
        )
    };
    let tls = ok(peer(&root, &["movie"], &[], false)).unwrap();
    assert_eq!(tls.sni, ServerName::try_from(HASH.to_hex()).unwrap());
    ok(peer(&root, &["*"], &[], false)).unwrap();
    ok(peer(&root, &[], &["movie"], false)).unwrap();
    assert!(matches!(
        ok(peer(&root, &["another torrent"], &[], false)),
        Err(SslError::Refused(_))
    ));
    assert!(matches!(
        ok(peer(&other, &["movie"], &[], false)),
        Err(SslError::Refused(_))
    ));
    assert!(matches!(
        ok(peer(&root, &["movie"], &[], true)),
        Err(SslError::Refused(_))
    ));
    // A key that is not the certificate's.
    let (cert, _) = peer(&root, &["movie"], &[], false);
    let (_, key) = peer(&root, &["movie"], &[], false);
    assert!(matches!(ok((cert, key)), Err(SslError::Key(_))));
    // Unreadable parts.
    let (cert, key) = peer(&root, &["movie"], &[], false);
    assert!(matches!(
        TorrentTls::new(b"", "movie", &HASH, cert.as_bytes(), key.as_bytes(), None),
        Err(SslError::RootCertificate(_))
    ));
    assert!(matches!(
        ok((String::new(), key)),
        Err(SslError::Certificate(_))
    ));
    assert!(matches!(ok((cert, "junk".into())), Err(SslError::Key(_))));
}

#[test]
fn an_encrypted_key_needs_its_passphrase() {
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGjMF8GCSqGSIb3DQEFDTBSMDEG\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let e = private_key(encrypted.as_bytes(), None).unwrap_err();
    assert!(e.to_string().contains("give its passphrase"), "{e}");
    let e = private_key(encrypted.as_bytes(), Some("pw")).unwrap_err();
    assert!(matches!(e, SslError::Key(_)), "{e}");
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
    let e = private_key(legacy.as_bytes(), Some("pw")).unwrap_err();
    assert!(e.to_string().contains("openssl pkcs8 -topk8"), "{e}");
}
