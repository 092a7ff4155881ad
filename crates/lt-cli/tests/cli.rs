//! The `lt` binary as scripts use it: `create` -> `info --json` -> `magnet`, and failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::path::Path;
use std::process::{Command, Output};

use lt_metainfo::{MagnetLink, TorrentInfo};
use serde_json::Value;

fn lt(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lt"))
        .args(args)
        .output()
        .expect("run lt")
}

fn lt_ok(args: &[&std::ffi::OsStr]) -> (String, String) {
    let out = lt(args);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 stderr");
    assert!(
        out.status.success(),
        "lt {args:?} failed ({}):\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// A small tree with awkward sizes and names.
fn make_tree(root: &Path) {
    let data = root.join("data");
    std::fs::create_dir_all(data.join("sub dir")).unwrap();
    std::fs::write(data.join("empty"), b"").unwrap();
    std::fs::write(data.join("one"), b"x").unwrap();
    let bytes: Vec<u8> = (0..100_000u32)
        .map(|i| (i * 7 + i / 251).to_le_bytes()[0])
        .collect();
    std::fs::write(data.join("sub dir").join("größe.bin"), &bytes).unwrap();
    std::fs::write(data.join("b16385"), &bytes[..16_385]).unwrap();
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// `info-hash v1: <hex>` lines of `lt create`'s stdout.
fn hash_lines(stdout: &str) -> (Option<String>, Option<String>) {
    let find = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|h| h.trim().to_owned())
    };
    (find("info-hash v1:"), find("info-hash v2:"))
}

#[test]
fn create_info_magnet_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());
    let data = dir.path().join("data");
    for (flag, has_v1, has_v2) in [
        ("--v1", true, false),
        ("--v2", false, true),
        ("--hybrid", true, true),
    ] {
        let out = dir.path().join(format!("t{flag}.torrent"));
        let (stdout, stderr) = lt_ok(&[
            os("create"),
            data.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os(flag),
            os("--tracker"),
            os("http://127.0.0.1:6969/announce,udp://127.0.0.1:6969"),
            os("--tracker"),
            os("http://backup.invalid/announce"),
            os("--piece-size"),
            os("16K"),
            os("--private"),
            os("--web-seed"),
            os("http://127.0.0.1:8080/files/"),
            os("--comment"),
            os("a comment"),
            os("--threads"),
            os("2"),
        ]);
        // Not a terminal: plain progress lines, then a summary.
        assert!(stderr.contains("hashed 100%"), "{stderr}");
        let (v1, v2) = hash_lines(&stdout);
        assert_eq!(v1.is_some(), has_v1, "{stdout}");
        assert_eq!(v2.is_some(), has_v2, "{stdout}");

        // The file on disk is what lt-metainfo reads, with the hashes that were printed.
        let parsed = TorrentInfo::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(parsed.info_hash().v1_hash().map(|h| h.to_hex()), v1);
        assert_eq!(parsed.info_hash().v2_hash().map(|h| h.to_hex()), v2);

        let (json, _) = lt_ok(&[os("info"), out.as_os_str(), os("--json")]);
        let j: Value = serde_json::from_str(&json).expect("info --json prints JSON");
        assert_eq!(j["name"], "data");
        assert_eq!(j["info_hash_v1"].as_str().map(str::to_owned), v1);
        assert_eq!(j["info_hash_v2"].as_str().map(str::to_owned), v2);
        assert_eq!(j["piece_length"], 16_384);
        assert_eq!(j["num_pieces"], parsed.num_pieces());
        assert_eq!(j["total_size"], parsed.total_size());
        assert_eq!(j["private"], true);
        assert_eq!(j["comment"], "a comment");
        assert_eq!(j["created_by"], concat!("lt ", env!("CARGO_PKG_VERSION")));
        let date = j["creation_date"].as_i64().expect("creation date");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            date.abs_diff(now as i64) < 600,
            "creation date {date}, now {now}"
        );
        assert_eq!(
            j["trackers"],
            serde_json::json!([
                {"url": "http://127.0.0.1:6969/announce", "tier": 0},
                {"url": "udp://127.0.0.1:6969", "tier": 0},
                {"url": "http://backup.invalid/announce", "tier": 1},
            ])
        );
        assert_eq!(
            j["web_seeds"],
            serde_json::json!(["http://127.0.0.1:8080/files/"])
        );

        let files = j["files"].as_array().unwrap();
        let real: Vec<(&str, u64)> = files
            .iter()
            .filter(|f| f["pad"] == false)
            .map(|f| (f["path"].as_str().unwrap(), f["size"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            real,
            [
                ("data/b16385", 16_385),
                ("data/empty", 0),
                ("data/one", 1),
                ("data/sub dir/größe.bin", 100_000),
            ]
        );
        let sizes: u64 = files.iter().map(|f| f["size"].as_u64().unwrap()).sum();
        assert_eq!(j["total_size"].as_u64(), Some(sizes));
        let pads = files.iter().filter(|f| f["pad"] == true).count();
        if has_v2 {
            assert!(pads > 0, "v2 and hybrid align files with pad files");
        } else {
            assert_eq!(pads, 0, "v1 torrents have no pad files");
        }

        let (magnet, _) = lt_ok(&[os("magnet"), out.as_os_str()]);
        let magnet = magnet.trim();
        assert_eq!(magnet, j["magnet"]);
        let m = MagnetLink::parse(magnet).expect("lt magnet prints a valid magnet URI");
        assert_eq!(m.info_hash, parsed.info_hash());
        assert_eq!(m.name.as_deref(), Some("data"));
        assert_eq!(m.trackers.len(), 3);

        let (text, _) = lt_ok(&[os("info"), out.as_os_str()]);
        assert!(text.contains("name:          data"), "{text}");
        assert!(text.contains("data/sub dir/größe.bin"), "{text}");
        assert!(text.contains(&format!("pieces:        {}", parsed.num_pieces())));
    }
}

#[test]
fn single_file_with_default_options() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("single.bin");
    std::fs::write(&file, vec![7u8; 40_000]).unwrap();
    let out = dir.path().join("single.torrent");
    let (stdout, _) = lt_ok(&[os("create"), file.as_os_str(), os("-o"), out.as_os_str()]);
    let (v1, v2) = hash_lines(&stdout);
    assert!(
        v1.is_some() && v2.is_some(),
        "hybrid is the default: {stdout}"
    );
    let (json, _) = lt_ok(&[os("info"), os("--json"), out.as_os_str()]);
    let j: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["name"], "single.bin");
    assert_eq!(
        j["files"],
        serde_json::json!([{"path": "single.bin", "size": 40_000, "pad": false}])
    );
    assert_eq!(j["private"], false);
    assert_eq!(j["trackers"], serde_json::json!([]));
    assert_eq!(j["comment"], Value::Null);
}

#[test]
fn bad_input_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.torrent");
    let missing = dir.path().join("missing.torrent");
    std::fs::write(&bad, b"d4:infod4:name1:xee").unwrap();
    let garbage = dir.path().join("garbage.torrent");
    std::fs::write(&garbage, b"this is not bencoding").unwrap();
    for args in [
        vec![os("info"), bad.as_os_str()],
        vec![os("info"), os("--json"), garbage.as_os_str()],
        vec![os("magnet"), bad.as_os_str()],
        vec![os("info"), missing.as_os_str()],
        vec![os("info"), dir.path().as_os_str()],
        vec![
            os("create"),
            missing.as_os_str(),
            os("-o"),
            dir.path().join("x.torrent").as_os_str(),
        ],
    ] {
        let out = lt(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "lt {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "lt {args:?} printed a result");
        assert!(stderr.starts_with("lt: error: "), "lt {args:?}: {stderr}");
    }
    let out = lt(&[os("info"), bad.as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.torrent is not a valid torrent"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.torrent");
    for args in [
        vec![os("create"), dir.path().as_os_str()],
        vec![
            os("create"),
            dir.path().as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--v1"),
            os("--v2"),
        ],
        vec![
            os("create"),
            dir.path().as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--piece-size"),
            os("lots"),
        ],
        vec![os("frobnicate")],
    ] {
        let status = lt(&args).status;
        assert_eq!(status.code(), Some(2), "lt {args:?}");
    }
    assert!(!out.exists());
}

#[test]
fn v2_rejects_a_piece_size_that_is_not_a_power_of_two() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());
    let out = dir.path().join("x.torrent");
    let result = lt(&[
        os("create"),
        dir.path().join("data").as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--v2"),
        os("--piece-size"),
        os("20000"),
    ]);
    assert_eq!(result.status.code(), Some(1));
    assert!(!out.exists(), "nothing is written on failure");
}
