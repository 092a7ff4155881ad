#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{Command, ProxyErrorKind, ProxyKind, ProxySettings, handshake};

fn peer() -> SocketAddr {
    "10.1.2.3:6881".parse().unwrap()
}

/// Runs the client handshake against `server`, which plays the proxy on the other end.
async fn run<F, Fut>(
    proxy: &ProxySettings,
    command: Command,
    server: F,
) -> (Result<SocketAddr, ProxyErrorKind>, DuplexStream)
where
    F: FnOnce(DuplexStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (mut client, proxy_end) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(server(proxy_end));
    let r = handshake(&mut client, proxy, command).await;
    task.await.unwrap();
    (r, client)
}

async fn expect(s: &mut DuplexStream, bytes: &[u8]) {
    let mut got = vec![0u8; bytes.len()];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, bytes);
}

#[tokio::test]
async fn socks5_without_auth_connects_and_reports_the_bound_address() {
    let p = ProxySettings::new(ProxyKind::Socks5, "h", 1);
    let (r, _) = run(&p, Command::Connect(peer()), |mut s| async move {
        expect(&mut s, &[5, 1, 0]).await;
        s.write_all(&[5, 0]).await.unwrap();
        expect(&mut s, &[5, 1, 0, 1, 10, 1, 2, 3, 0x1a, 0xe1]).await;
        s.write_all(&[5, 0, 0, 1, 127, 0, 0, 9, 0, 80])
            .await
            .unwrap();
    })
    .await;
    assert_eq!(r, Ok("127.0.0.9:80".parse().unwrap()));
}

#[tokio::test]
async fn socks5_password_accepted_and_refused() {
    let p = ProxySettings::new(ProxyKind::Socks5, "h", 1).with_auth("ann", "pw");
    for (status, want) in [(0u8, None), (1, Some(ProxyErrorKind::AuthFailed))] {
        let (r, _) = run(&p, Command::Connect(peer()), move |mut s| async move {
            expect(&mut s, &[5, 2, 0, 2]).await;
            s.write_all(&[5, 2]).await.unwrap();
            expect(&mut s, &[1, 3, b'a', b'n', b'n', 2, b'p', b'w']).await;
            s.write_all(&[1, status]).await.unwrap();
            if status == 0 {
                expect(&mut s, &[5, 1, 0, 1, 10, 1, 2, 3, 0x1a, 0xe1]).await;
                // A bound address given as a name.
                s.write_all(&[5, 0, 0, 3, 1, b'x', 0, 7]).await.unwrap();
            }
        })
        .await;
        match want {
            None => assert_eq!(r.unwrap().port(), 7),
            Some(e) => assert_eq!(r, Err(e)),
        }
    }
}

#[tokio::test]
async fn socks5_refusals_are_named() {
    let p = ProxySettings::new(ProxyKind::Socks5, "h", 1);
    // No acceptable method: the proxy wants credentials we do not have.
    let (r, _) = run(&p, Command::Connect(peer()), |mut s| async move {
        expect(&mut s, &[5, 1, 0]).await;
        s.write_all(&[5, 0xff]).await.unwrap();
    })
    .await;
    assert_eq!(r, Err(ProxyErrorKind::AuthRequired));
    // The destination refused.
    let (r, _) = run(&p, Command::Connect(peer()), |mut s| async move {
        expect(&mut s, &[5, 1, 0]).await;
        s.write_all(&[5, 0]).await.unwrap();
        expect(&mut s, &[5, 1, 0, 1, 10, 1, 2, 3, 0x1a, 0xe1]).await;
        s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
    })
    .await;
    assert_eq!(
        r,
        Err(ProxyErrorKind::Refused("connection refused (5)".into()))
    );
}

#[tokio::test]
async fn hostile_socks_answers_are_errors() {
    let p5 = ProxySettings::new(ProxyKind::Socks5, "h", 1);
    // Closes in the middle of the handshake.
    let (r, _) = run(&p5, Command::Connect(peer()), |mut s| async move {
        expect(&mut s, &[5, 1, 0]).await;
        s.write_all(&[5]).await.unwrap();
    })
    .await;
    assert_eq!(r, Err(ProxyErrorKind::Closed));
    // Garbage: an HTTP answer to a SOCKS greeting.
    let (r, _) = run(&p5, Command::Connect(peer()), |mut s| async move {
        expect(&mut s, &[5, 1, 0]).await;
        s.write_all(b"HTTP/1.0 400 Bad\r\n\r\n").await.unwrap();
    })
    .await;
    assert!(matches!(r, Err(ProxyErrorKind::Malformed(_))), "{r:?}");
    // An unknown address type in the reply.
    let (r, _) = run(&p5, Command::Connect(peer()), |mut s| async move {
        expect(&mut s, &[5, 1, 0]).await;
        s.write_all(&[5, 0]).await.unwrap();
        expect(&mut s, &[5, 1, 0, 1, 10, 1, 2, 3, 0x1a, 0xe1]).await;
        s.write_all(&[5, 0, 0, 9]).await.unwrap();
    })
    .await;
    assert!(matches!(r, Err(ProxyErrorKind::Malformed(_))), "{r:?}");
    // SOCKS4: a reply of the wrong version.
    let p4 = ProxySettings::new(ProxyKind::Socks4, "h", 1);
    let (r, _) = run(&p4, Command::Connect(peer()), |mut s| async move {
        expect(&mut s, &[4, 1, 0x1a, 0xe1, 10, 1, 2, 3, 0]).await;
        s.write_all(&[5, 90, 0, 0, 0, 0, 0, 0]).await.unwrap();
    })
    .await;
    assert!(matches!(r, Err(ProxyErrorKind::Malformed(_))), "{r:?}");
}

#[tokio::test]
async fn socks4_grants_refuses_and_has_no_ipv6() {
    let p = ProxySettings::new(ProxyKind::Socks4, "h", 1);
    for (code, ok) in [(90u8, true), (91, false)] {
        let (r, _) = run(&p, Command::Connect(peer()), move |mut s| async move {
            expect(&mut s, &[4, 1, 0x1a, 0xe1, 10, 1, 2, 3, 0]).await;
            s.write_all(&[0, code, 0, 0, 0, 0, 0, 0]).await.unwrap();
        })
        .await;
        assert_eq!(r.is_ok(), ok, "{r:?}");
    }
    let v6: SocketAddr = "[::1]:6881".parse().unwrap();
    let (r, _) = run(&p, Command::Connect(v6), |_| async {}).await;
    assert!(matches!(r, Err(ProxyErrorKind::Unsupported(_))));
    let (r, _) = run(&p, Command::UdpAssociate(peer()), |_| async {}).await;
    assert!(matches!(r, Err(ProxyErrorKind::Unsupported(_))));
}

#[tokio::test]
async fn socks5_udp_associate_names_the_relay() {
    let p = ProxySettings::new(ProxyKind::Socks5, "h", 1);
    let local: SocketAddr = "0.0.0.0:40000".parse().unwrap();
    let (r, _) = run(&p, Command::UdpAssociate(local), |mut s| async move {
        expect(&mut s, &[5, 1, 0]).await;
        s.write_all(&[5, 0]).await.unwrap();
        expect(&mut s, &[5, 3, 0, 1, 0, 0, 0, 0, 0x9c, 0x40]).await;
        s.write_all(&[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90])
            .await
            .unwrap();
    })
    .await;
    assert_eq!(r, Ok("10.0.0.1:8080".parse().unwrap()));
}

#[tokio::test]
async fn http_connect_leaves_the_tunnelled_bytes_unread() {
    let p = ProxySettings::new(ProxyKind::Http, "h", 1).with_auth("ann", "pw");
    let (r, mut client) = run(&p, Command::Connect(peer()), |mut s| async move {
        let want = "CONNECT 10.1.2.3:6881 HTTP/1.1\r\nHost: 10.1.2.3:6881\r\n\
                    Proxy-Authorization: Basic YW5uOnB3\r\n\r\n";
        expect(&mut s, want.as_bytes()).await;
        s.write_all(b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n\x13BitTorrent")
            .await
            .unwrap();
    })
    .await;
    assert_eq!(r, Ok(peer()));
    let mut rest = [0u8; 11];
    client.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest, b"\x13BitTorrent");
}

#[tokio::test]
async fn http_connect_refusals_and_garbage() {
    let no_auth = ProxySettings::new(ProxyKind::Http, "h", 1);
    let with_auth = no_auth.clone().with_auth("a", "b");
    for (p, answer, want) in [
        (
            &no_auth,
            &b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..],
            ProxyErrorKind::AuthRequired,
        ),
        (
            &with_auth,
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            ProxyErrorKind::AuthFailed,
        ),
        (
            &no_auth,
            b"HTTP/1.1 403 Forbidden\r\n\r\n",
            ProxyErrorKind::Refused("HTTP/1.1 403 Forbidden".into()),
        ),
        (
            &no_auth,
            b"SSH-2.0 OpenSSH_9.2\r\n\r\n",
            ProxyErrorKind::Malformed("not an HTTP/1 answer"),
        ),
        (&no_auth, b"HTTP/1.1 200", ProxyErrorKind::Closed),
    ] {
        let answer = answer.to_vec();
        let (r, _) = run(p, Command::Connect(peer()), move |mut s| async move {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(&answer).await.unwrap();
        })
        .await;
        assert_eq!(r, Err(want));
    }
    // A header that never ends is cut at 8 KiB.
    let (r, _) = run(&no_auth, Command::Connect(peer()), |mut s| async move {
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).await.unwrap();
        let _ = s.write_all(&[b'x'; 9000]).await;
    })
    .await;
    assert!(matches!(r, Err(ProxyErrorKind::Malformed(_))), "{r:?}");
}

#[test]
fn proxy_urls_parse() {
    let p: ProxySettings = "socks5://us%40er:p%3Aw@127.0.0.1:1080".parse().unwrap();
    assert_eq!(p.kind, ProxyKind::Socks5);
    assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 1080));
    let auth = p.auth.unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("us@er", "p:w")
    );
    let p: ProxySettings = "http://[::1]:3128".parse().unwrap();
    assert_eq!(
        (p.kind, p.host.as_str(), &p.auth),
        (ProxyKind::Http, "::1", &None)
    );
    assert_eq!(p.endpoint(), "[::1]:3128");
    assert_eq!(
        "socks4a://proxy.example:1080"
            .parse::<ProxySettings>()
            .unwrap()
            .kind,
        ProxyKind::Socks4
    );
    for bad in [
        "ftp://h:1",
        "socks5://h",
        "socks5://:1",
        "socks5://h:99999",
        "socks4://u:p@h:1",
        "h:1",
    ] {
        assert!(bad.parse::<ProxySettings>().is_err(), "{bad}");
    }
}
