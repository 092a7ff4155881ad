//! SSL torrents (the manual's "SSL torrents" chapter): a torrent whose info dictionary
//! holds a root certificate (`ssl-cert`) talks to its peers only over TLS, TCP or uTP, and
//! both sides show a certificate that root signed.
//!
//! The rules, as the manual and libtorrent's `verify_peer_cert` have them:
//! - the peer's chain must lead to the torrent's root, and to no other (each torrent trusts
//!   its own root alone);
//! - the peer's certificate must name the torrent: a SubjectAltName dNSName equal, byte for
//!   byte, to the torrent's name, or `*`; failing that, the last (most specific) Common Name
//!   equal to the name, or `*` ([`names_torrent`]);
//! - the connecting side sends SNI: the hex v1 (or truncated v2) info-hash, which is how the
//!   accepting side picks the torrent, and with it the certificate to show and the root to
//!   check against ([`sni_hash`]). A connection without SNI, or naming a torrent that is not
//!   an SSL torrent with a certificate here, is closed during the TLS handshake.
//!
//! TLS is rustls (1.3 and 1.2, with ring's AES-GCM and ChaCha20-Poly1305; AES-GCM is
//! preferred, and uses AES-NI where the CPU has it). There is no session resumption: a
//! resumed session skips the certificate check, and peer connections are few and long.
//! libtorrent's `dh_params` argument has no counterpart: rustls offers only ECDHE key
//! exchange, which needs no parameters. Its `passphrase` is: a key encrypted as PKCS#8
//! (`ENCRYPTED PRIVATE KEY`, PBES2 with PBKDF2-HMAC-SHA2 or scrypt and AES-CBC, what
//! OpenSSL 3 writes) is decrypted with it by the `pkcs8` crate; OpenSSL's older
//! `Proc-Type: 4,ENCRYPTED` keys are refused with a note to convert them.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use lt_core::Sha1Hash;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};

/// Why an SSL torrent's certificate could not be set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SslError {
    /// The torrent has no root certificate (or no metadata yet): it is not an SSL torrent.
    #[error("not an SSL torrent")]
    NotSslTorrent,
    /// The torrent's root certificate cannot be used.
    #[error("the torrent's root certificate: {0}")]
    RootCertificate(String),
    /// Our certificate cannot be read.
    #[error("the certificate: {0}")]
    Certificate(String),
    /// The private key cannot be read, or does not belong to the certificate.
    #[error("the private key: {0}")]
    Key(String),
    /// Our certificate would be refused by every peer: not signed by the torrent's root,
    /// expired, or not naming the torrent.
    #[error("the certificate does not fit the torrent: {0}")]
    Refused(String),
    /// A certificate or key file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One SSL torrent's TLS setup: what we dial with and what we accept with.
pub(crate) struct TorrentTls {
    pub(crate) client: Arc<rustls::ClientConfig>,
    pub(crate) server: Arc<rustls::ServerConfig>,
    /// The SNI we send: the hex info-hash.
    pub(crate) sni: ServerName<'static>,
}

impl fmt::Debug for TorrentTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorrentTls")
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

/// The SSL torrents that have a certificate, by v1 (or truncated v2) info-hash; the
/// accepting side looks a connection's SNI up here, the dialling side its torrent.
#[derive(Debug, Default)]
pub(crate) struct SslContexts(RwLock<std::collections::BTreeMap<Sha1Hash, Arc<TorrentTls>>>);

impl SslContexts {
    pub(crate) fn get(&self, hash: &Sha1Hash) -> Option<Arc<TorrentTls>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned()
    }

    pub(crate) fn insert(&self, hash: Sha1Hash, tls: TorrentTls) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(hash, Arc::new(tls));
    }

    pub(crate) fn remove(&self, hash: &Sha1Hash) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(hash);
    }
}

/// The torrent an SNI names: its first 40 characters, hex (libtorrent reads those 40 and
/// ignores the rest).
pub(crate) fn sni_hash(name: &str) -> Option<Sha1Hash> {
    Sha1Hash::from_hex(name.get(..40)?).ok()
}

/// Whether a peer certificate (DER) names the torrent called `torrent`: one of its
/// SubjectAltName dNSNames is the name or `*`; failing that, its last Common Name is. The
/// comparison is byte for byte (no case folding, no Unicode normalisation, no wildcard but
/// a lone `*`). A certificate that cannot be parsed names nothing.
pub(crate) fn names_torrent(cert: &[u8], torrent: &str) -> bool {
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(cert) else {
        return false;
    };
    let fits = |n: &[u8]| !n.is_empty() && (n == b"*" || n == torrent.as_bytes());
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        let dns = san.value.general_names.iter().filter_map(|g| match g {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.as_bytes()),
            _ => None,
        });
        for name in dns {
            if fits(name) {
                return true;
            }
        }
    }
    x509.subject()
        .iter_common_name()
        .last()
        .is_some_and(|cn| fits(cn.as_slice()))
}

/// Checks peer certificates by the SSL torrent rule, both ways: as a client (the peer we
/// dialled) and as a server (the peer that dialled us).
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    /// The torrent's name, which the peer's certificate must carry.
    name: String,
    provider: Arc<CryptoProvider>,
    /// webpki's client-certificate check against `roots` (chain, validity, key usage).
    client: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PeerVerifier {
    fn check_name(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if names_torrent(cert, &self.name) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_as_server(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        self.check_name(end_entity)
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The server name we sent is the info-hash; the certificate names the torrent.
        self.verify_as_server(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.client.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.client
            .verify_client_cert(end_entity, intermediates, now)?;
        self.check_name(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(self)
    }
}

/// The private key in a PEM text, decrypted with `passphrase` when it is encrypted.
fn private_key(pem: &[u8], passphrase: Option<&str>) -> Result<PrivateKeyDer<'static>, SslError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(SslError::Key(
            "an OpenSSL legacy encrypted key: convert it with \
             `openssl pkcs8 -topk8 -in key.pem -out key8.pem`"
                .into(),
        ));
    }
    let Some(start) = text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") else {
        return PrivateKeyDer::from_pem_slice(pem).map_err(|e| SslError::Key(e.to_string()));
    };
    let Some(passphrase) = passphrase else {
        return Err(SslError::Key(
            "the key is encrypted: give its passphrase".into(),
        ));
    };
    let (_, doc) = pkcs8::der::Document::from_pem(&text[start..])
        .map_err(|e| SslError::Key(format!("encrypted key: {e}")))?;
    let decrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
        .and_then(|info| info.decrypt(passphrase))
        .map_err(|e| SslError::Key(format!("cannot decrypt the key (wrong passphrase?): {e}")))?;
    Ok(PrivateKeyDer::Pkcs8(decrypted.as_bytes().to_vec().into()))
}

/// Every certificate in a PEM text.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate".into());
    }
    Ok(certs)
}

impl TorrentTls {
    /// The TLS setup of the SSL torrent `name` (v1 or truncated v2 info-hash `hash`) whose
    /// root certificate is `root_pem`, with our certificate chain `chain_pem` (ours first,
    /// then any intermediates) and its private key `key_pem` (PKCS#8, PKCS#1 or SEC1, PEM).
    ///
    /// # Errors
    /// [`SslError`] when a part cannot be read, the key is not the certificate's, or our
    /// certificate would not pass the rule peers check it by (then no peer would take it).
    pub(crate) fn new(
        root_pem: &[u8],
        name: &str,
        hash: &Sha1Hash,
        chain_pem: &[u8],
        key_pem: &[u8],
        passphrase: Option<&str>,
    ) -> Result<Self, SslError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in certificates(root_pem).map_err(SslError::RootCertificate)? {
            roots
                .add(cert)
                .map_err(|e| SslError::RootCertificate(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let chain = certificates(chain_pem).map_err(SslError::Certificate)?;
        let key = private_key(key_pem, passphrase)?;
        let client =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| SslError::RootCertificate(e.to_string()))?;
        let verifier = Arc::new(PeerVerifier {
            roots,
            name: name.to_owned(),
            provider: Arc::clone(&provider),
            client,
        });
        // Our own certificate must pass what every peer checks, both ways.
        let (ours, intermediates) = chain
            .split_first()
            .ok_or_else(|| SslError::Certificate("no PEM certificate".into()))?;
        let now = UnixTime::now();
        verifier
            .verify_as_server(ours, intermediates, now)
            .and_then(|()| {
                verifier
                    .client
                    .verify_client_cert(ours, intermediates, now)
                    .map(|_| ())
            })
            .map_err(|e| SslError::Refused(e.to_string()))?;
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let mut client = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| SslError::Certificate(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>)
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| SslError::Key(e.to_string()))?;
        client.resumption = rustls::client::Resumption::disabled();
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| SslError::Certificate(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| SslError::Key(e.to_string()))?;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let sni = ServerName::try_from(hash.to_hex())
            .map_err(|e| SslError::Certificate(format!("SNI: {e}")))?;
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            sni,
        })
    }
}

#[cfg(test)]
#[path = "ssl_tests.rs"]
mod tests;
