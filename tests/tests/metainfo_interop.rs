//! lt-metainfo against libtorrent-rasterbar 2.0 (`python3-libtorrent`) and `mktorrent`.
//!
//! - torrents that libtorrent creates (v1, v2, hybrid; a directory with pad files and a
//!   single file) parse in lt-metainfo to the same info-hashes, files (pad files included),
//!   piece hashes, v2 `pieces root`s and piece counts;
//! - torrents that [`CreateTorrent`] makes load in libtorrent the same way, and a libtorrent
//!   session checks the data on disk against our hashes and reports 100% (and less than
//!   100% when a byte of the data is changed);
//! - torrents that `mktorrent` makes (v1) parse with the info-hash, files, trackers, web seeds
//!   and comment libtorrent reads from the same file.
//!
//! The data is a small tree of awkward sizes (0, 1, 16383, 16385 and 100000 bytes) and names
//! (spaces, non-ASCII, a subdirectory) in a temporary directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lt_core::PieceIndex;
use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion, WebSeedKind};
use serde_json::Value;

/// Longest a single python or mktorrent run may take; the libtorrent session script bounds
/// its own wait for the check to 30 s.
const CHILD_TIMEOUT: Duration = Duration::from_secs(90);

/// Prints libtorrent's view of the torrent file `argv[1]` as JSON.
const DESCRIBE_PY: &str = r#"
import json, sys
import libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
fs = ti.files()
ih = ti.info_hashes()
files = []
for i in range(fs.num_files()):
    root = fs.root(i)
    files.append({
        "path": fs.file_path(i),
        "size": fs.file_size(i),
        "pad": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
        "root": None if root.is_all_zeros() else root.to_bytes().hex(),
    })
print(json.dumps({
    "v1": ih.v1.to_bytes().hex() if ih.has_v1() else None,
    "v2": ih.v2.to_bytes().hex() if ih.has_v2() else None,
    "name": ti.name(),
    "piece_length": ti.piece_length(),
    "num_pieces": ti.num_pieces(),
    "total_size": ti.total_size(),
    "piece_hashes": [ti.hash_for_piece(i).hex() for i in range(ti.num_pieces())]
        if ih.has_v1() else [],
    "files": files,
    "private": ti.priv(),
    "trackers": [{"url": t.url, "tier": t.tier} for t in ti.trackers()],
    "web_seeds": [w["url"] for w in ti.web_seeds()],
    "comment": ti.comment(),
    "creator": ti.creator(),
    "creation_date": ti.creation_date(),
}))
"#;

/// Creates a torrent of `argv[1]` with libtorrent: piece size `argv[3]`, version `argv[4]`
/// (`v1`, `v2` or `hybrid`), written to `argv[2]`.
const CREATE_PY: &str = r#"
import os, sys
import libtorrent as lt
src, out, piece_size, version = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[version]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, piece_size, flags)
lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(src)))
with open(out, "wb") as f:
    f.write(lt.bencode(ct.generate()))
"#;

/// Adds the torrent `argv[1]` to a libtorrent session with save path `argv[2]` (the data is
/// already there), waits (at most 30 s) for libtorrent to check the files against the
/// torrent's hashes, and prints the outcome as JSON.
const CHECK_PY: &str = r#"
import json, sys, time
import libtorrent as lt
settings = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "alert_mask": lt.alert_category.error | lt.alert_category.status | lt.alert_category.storage,
}
ses = lt.session(settings)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(sys.argv[1])
atp.save_path = sys.argv[2]
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
handle = ses.add_torrent(atp)
checked, errors = False, []
deadline = time.monotonic() + 30
while not checked and time.monotonic() < deadline:
    ses.wait_for_alert(100)
    for alert in ses.pop_alerts():
        if isinstance(alert, lt.torrent_checked_alert):
            checked = True
        elif alert.category() & lt.alert_category.error:
            errors.append(alert.message())
status = handle.status()
print(json.dumps({
    "checked": checked,
    "is_seeding": status.is_seeding,
    "progress": status.progress,
    "have_pieces": status.num_pieces,
    "num_pieces": atp.ti.num_pieces(),
    "state": str(status.state),
    "errors": errors,
}))
"#;

// ------------------------------------------------------------------------------------------
// a) libtorrent creates, lt-metainfo parses

#[test]
fn libtorrent_torrents_parse_identically() {
    let python = lt_tests::require_python_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let data = make_tree(tmp.path());
    let single = data.join("b16385");
    let cases = [
        (&data, 16_384, "v1"),
        (&data, 16_384, "v2"),
        (&data, 16_384, "hybrid"),
        (&data, 65_536, "hybrid"),
        (&single, 16_384, "v1"),
        (&single, 16_384, "v2"),
        (&single, 16_384, "hybrid"),
    ];
    for (i, (src, piece_size, version)) in cases.into_iter().enumerate() {
        let what = format!(
            "libtorrent {version}, {piece_size}-byte pieces, {}",
            src.display()
        );
        let out = tmp.path().join(format!("lt{i}.torrent"));
        run_python(
            python,
            CREATE_PY,
            &[
                src.as_os_str(),
                out.as_os_str(),
                piece_size.to_string().as_ref(),
                version.as_ref(),
            ],
        );
        let theirs = describe(python, &out);
        let ours = TorrentInfo::from_bytes(&std::fs::read(&out).unwrap())
            .unwrap_or_else(|e| panic!("{what}: lt-metainfo rejects it: {e}"));
        assert_same(&ours, &theirs, &what);
        assert_eq!(ours.info_hash().has_v1(), version != "v2", "{what}");
        assert_eq!(ours.info_hash().has_v2(), version != "v1", "{what}");
        if src == &data && version != "v1" {
            assert!(
                ours.files().files().iter().any(|f| f.is_pad()),
                "{what}: pad files"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// b) lt-metainfo creates, libtorrent loads and verifies the data

#[test]
fn our_torrents_load_and_verify_in_libtorrent() {
    let python = lt_tests::require_python_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let data = make_tree(tmp.path());
    let single = data.join("sub").join("hundred k.bin");
    let cases = [
        (&data, TorrentVersion::V1, 16_384),
        (&data, TorrentVersion::V2, 16_384),
        (&data, TorrentVersion::Hybrid, 16_384),
        (&data, TorrentVersion::Hybrid, 32_768),
        (&single, TorrentVersion::V1, 16_384),
        (&single, TorrentVersion::V2, 16_384),
        (&single, TorrentVersion::Hybrid, 32_768),
    ];
    for (i, (src, version, piece_size)) in cases.into_iter().enumerate() {
        let what = format!(
            "CreateTorrent {version:?}, {piece_size}-byte pieces, {}",
            src.display()
        );
        let bytes = CreateTorrent::new(src)
            .version(version)
            .piece_size(piece_size)
            .generate()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let ours = TorrentInfo::from_bytes(&bytes).unwrap();
        let out = tmp.path().join(format!("ours{i}.torrent"));
        std::fs::write(&out, &bytes).unwrap();

        let theirs = describe(python, &out);
        assert_same(&ours, &theirs, &what);

        // libtorrent hashes the files on disk and compares with our piece hashes and trees.
        let check = check_in_session(python, &out, src.parent().unwrap());
        assert_eq!(
            check["checked"], true,
            "{what}: libtorrent did not finish checking: {check}"
        );
        assert_eq!(check["num_pieces"], ours.num_pieces(), "{what}: {check}");
        assert_eq!(
            check["have_pieces"],
            ours.num_pieces(),
            "{what}: libtorrent found pieces that fail our hashes: {check}"
        );
        assert_eq!(check["is_seeding"], true, "{what}: {check}");
        assert_eq!(check["progress"], 1.0, "{what}: {check}");
        assert_eq!(check["errors"], Value::Array(Vec::new()), "{what}: {check}");
    }
}

/// The check above means something: change one byte and libtorrent fails exactly that piece.
#[test]
fn libtorrent_rejects_changed_data_for_our_hashes() {
    let python = lt_tests::require_python_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let data = make_tree(tmp.path());
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        let bytes = CreateTorrent::new(&data)
            .version(version)
            .piece_size(16_384)
            .generate()
            .unwrap();
        let ours = TorrentInfo::from_bytes(&bytes).unwrap();
        let out = tmp.path().join("changed.torrent");
        std::fs::write(&out, &bytes).unwrap();

        let copy = tempfile::tempdir().unwrap();
        copy_tree(&data, &copy.path().join("data"));
        let victim = copy.path().join("data").join("sub").join("hundred k.bin");
        let mut content = std::fs::read(&victim).unwrap();
        content[50_000] ^= 0x5a;
        std::fs::write(&victim, &content).unwrap();

        let check = check_in_session(python, &out, copy.path());
        assert_eq!(check["checked"], true, "{version:?}: {check}");
        assert_eq!(check["is_seeding"], false, "{version:?}: {check}");
        assert_eq!(
            check["have_pieces"],
            ours.num_pieces() - 1,
            "{version:?}: exactly the changed piece fails: {check}"
        );
    }
}

/// Trackers, web seeds, comment, creator, date and the private flag as libtorrent reads them.
#[test]
fn our_metadata_fields_read_the_same_in_libtorrent() {
    let python = lt_tests::require_python_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let data = make_tree(tmp.path());
    let bytes = CreateTorrent::new(&data)
        .tracker_tier("http://127.0.0.1:6969/announce", 0)
        .tracker_tier("udp://127.0.0.1:6969", 0)
        .tracker_tier("http://127.0.0.2:6969/announce", 1)
        .web_seed("http://127.0.0.1:8080/seed/")
        .comment("comment with ünïcode")
        .creator("lt-tests")
        .creation_date(1_700_000_000)
        .private(true)
        .generate()
        .unwrap();
    let ours = TorrentInfo::from_bytes(&bytes).unwrap();
    let out = tmp.path().join("fields.torrent");
    std::fs::write(&out, &bytes).unwrap();
    let theirs = describe(python, &out);
    assert_same(&ours, &theirs, "CreateTorrent with every field");
    assert_same_fields(&ours, &theirs, "CreateTorrent with every field");
    assert_eq!(theirs["private"], true);
    assert_eq!(theirs["comment"], "comment with ünïcode");
    assert_eq!(theirs["creator"], "lt-tests");
    assert_eq!(theirs["creation_date"], 1_700_000_000);
    assert_eq!(
        theirs["web_seeds"],
        serde_json::json!(["http://127.0.0.1:8080/seed/"])
    );
}

// ------------------------------------------------------------------------------------------
// c) mktorrent creates (v1), lt-metainfo and libtorrent parse

#[test]
fn mktorrent_torrents_parse_identically() {
    let python = lt_tests::require_python_libtorrent();
    let mktorrent = lt_tests::require_program("mktorrent", "mktorrent");
    let tmp = tempfile::tempdir().unwrap();
    let data = make_tree(tmp.path());
    let single = data.join("sub").join("naïve file ü.txt");
    let cases: [(&Path, u32, &[&str]); 4] = [
        (&data, 15, &[]),
        (
            &data,
            16,
            &[
                "-p",
                "-c",
                "ein Kommentar: äöü",
                "-w",
                "http://127.0.0.1/ws/",
            ],
        ),
        (
            &single,
            15,
            &[
                "-a",
                "udp://127.0.0.1:6969",
                "-a",
                "http://127.0.0.2/announce",
            ],
        ),
        (&data.join("a16383"), 18, &["-d"]),
    ];
    for (i, (src, log2_piece, extra)) in cases.into_iter().enumerate() {
        let what = format!("mktorrent -l {log2_piece} {extra:?} {}", src.display());
        let out = tmp.path().join(format!("mk{i}.torrent"));
        let mut cmd = Command::new(&mktorrent);
        cmd.arg("-l")
            .arg(log2_piece.to_string())
            .args(["-a", "http://127.0.0.1/announce"])
            .args(extra)
            .arg("-o")
            .arg(&out)
            .arg(src);
        let output = lt_tests::output_with_timeout(&mut cmd, CHILD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            output.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs = describe(python, &out);
        let ours = TorrentInfo::from_bytes(&std::fs::read(&out).unwrap())
            .unwrap_or_else(|e| panic!("{what}: lt-metainfo rejects it: {e}"));
        assert!(
            !ours.info_hash().has_v2(),
            "{what}: mktorrent makes v1 torrents"
        );
        assert_same(&ours, &theirs, &what);
        assert_same_fields(&ours, &theirs, &what);
        assert_eq!(ours.created_by(), Some("mktorrent 1.1"), "{what}");
        assert_eq!(ours.piece_length(), 1 << log2_piece, "{what}");
        assert_eq!(
            ours.creation_date().is_none(),
            extra.contains(&"-d"),
            "{what}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// helpers

/// Writes the test tree under `root` and returns its directory (`root/data`).
fn make_tree(root: &Path) -> PathBuf {
    let data = root.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                // xorshift64: distinct content in every piece, reproducible.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect()
    };
    for (path, size) in [
        ("empty.bin", 0),
        ("one.bin", 1),
        ("a16383", 16_383),
        ("b16385", 16_385),
        ("sub/hundred k.bin", 100_000),
        ("sub/naïve file ü.txt", 777),
    ] {
        std::fs::write(data.join(path), bytes(size)).unwrap();
    }
    data
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs an inline python script with Debian's python and libtorrent; returns its stdout.
fn run_python(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(script).args(args);
    let output = lt_tests::output_with_timeout(&mut cmd, CHILD_TIMEOUT)
        .unwrap_or_else(|e| panic!("python libtorrent script {args:?}: {e}"));
    assert!(
        output.status.success(),
        "python libtorrent script {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the scripts print UTF-8 JSON")
}

/// libtorrent's `torrent_info` of a file, as the JSON of [`DESCRIBE_PY`].
fn describe(python: &Path, torrent: &Path) -> Value {
    let json = run_python(python, DESCRIBE_PY, &[torrent.as_os_str()]);
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {json}"))
}

/// A libtorrent session's check of `save_path` against `torrent`, as the JSON of [`CHECK_PY`].
fn check_in_session(python: &Path, torrent: &Path, save_path: &Path) -> Value {
    let json = run_python(
        python,
        CHECK_PY,
        &[torrent.as_os_str(), save_path.as_os_str()],
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {json}"))
}

type FileRow = (String, u64, bool, Option<String>);

/// The info dictionary seen the same way: hashes, name, pieces, files (pad files included),
/// v1 piece hashes and v2 pieces roots. Panics listing every difference.
fn assert_same(ours: &TorrentInfo, theirs: &Value, what: &str) {
    let mut diffs = Vec::new();
    let mut check = |field: &str, ours: String, theirs: String| {
        if ours != theirs {
            diffs.push(format!(
                "{field}:\n    ours:       {ours}\n    libtorrent: {theirs}"
            ));
        }
    };
    let ih = ours.info_hash();
    check(
        "v1 info-hash",
        format!("{:?}", ih.v1_hash().map(|h| h.to_hex())),
        format!("{:?}", theirs["v1"].as_str()),
    );
    check(
        "v2 info-hash",
        format!("{:?}", ih.v2_hash().map(|h| h.to_hex())),
        format!("{:?}", theirs["v2"].as_str()),
    );
    check(
        "name",
        format!("{:?}", ours.name()),
        theirs["name"].to_string(),
    );
    check(
        "piece length",
        ours.piece_length().to_string(),
        theirs["piece_length"].to_string(),
    );
    check(
        "piece count",
        ours.num_pieces().to_string(),
        theirs["num_pieces"].to_string(),
    );

    let their_files: Vec<FileRow> = theirs["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["size"].as_u64().unwrap(),
                f["pad"].as_bool().unwrap(),
                f["root"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let our_files: Vec<FileRow> = ours
        .files()
        .files()
        .iter()
        .map(|f| {
            (
                f.path_string(),
                f.size,
                f.is_pad(),
                f.pieces_root.map(|r| r.to_hex()),
            )
        })
        .collect();
    let our_total = ours.total_size();
    if our_files.len() != their_files.len() {
        check(
            "file count",
            our_files.len().to_string(),
            their_files.len().to_string(),
        );
    }
    for (i, (a, b)) in our_files.iter().zip(&their_files).enumerate() {
        check(
            &format!("file {i} (path, size, pad, pieces root)"),
            format!("{a:?}"),
            format!("{b:?}"),
        );
    }
    for (i, extra) in our_files.iter().enumerate().skip(their_files.len()) {
        check(&format!("file {i}"), format!("{extra:?}"), "-".to_owned());
    }
    for (i, extra) in their_files.iter().enumerate().skip(our_files.len()) {
        check(&format!("file {i}"), "-".to_owned(), format!("{extra:?}"));
    }
    check(
        "total size",
        our_total.to_string(),
        theirs["total_size"].to_string(),
    );

    let their_hashes: Vec<&str> = theirs["piece_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let our_hashes: Vec<String> = if ih.has_v1() {
        (0..ours.num_pieces())
            .map(|p| {
                ours.piece_hash(PieceIndex::new(p))
                    .map_or_else(|| "missing".to_owned(), |h| h.to_hex())
            })
            .collect()
    } else {
        Vec::new()
    };
    check(
        "v1 piece hashes",
        format!("{our_hashes:?}"),
        format!("{their_hashes:?}"),
    );
    assert!(
        diffs.is_empty(),
        "{what}: lt-metainfo and libtorrent disagree:\n  {}",
        diffs.join("\n  ")
    );
}

/// The fields outside the info dictionary, and the private flag.
fn assert_same_fields(ours: &TorrentInfo, theirs: &Value, what: &str) {
    // libtorrent shuffles the trackers of each tier when it loads a torrent (BEP 12 asks
    // clients to), so compare each tier as a set.
    let mut our_trackers: Vec<(u64, String)> = ours
        .trackers()
        .iter()
        .map(|t| (u64::from(t.tier), t.url.clone()))
        .collect();
    let mut their_trackers: Vec<(u64, String)> = theirs["trackers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tier"].as_u64().unwrap(),
                t["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    our_trackers.sort();
    their_trackers.sort();
    assert_eq!(our_trackers, their_trackers, "{what}: trackers (tier, url)");
    assert_eq!(
        ours.trackers().iter().map(|t| t.tier).collect::<Vec<_>>(),
        theirs["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| u8::try_from(t["tier"].as_u64().unwrap()).unwrap())
            .collect::<Vec<_>>(),
        "{what}: tier order"
    );
    let web_seeds: Vec<&str> = ours
        .web_seeds()
        .iter()
        .filter(|w| w.kind == WebSeedKind::Url)
        .map(|w| w.url.as_str())
        .collect();
    assert_eq!(
        theirs["web_seeds"],
        serde_json::json!(web_seeds),
        "{what}: web seeds"
    );
    assert_eq!(theirs["private"], ours.is_private(), "{what}: private");
    assert_eq!(
        theirs["comment"],
        ours.comment().unwrap_or(""),
        "{what}: comment"
    );
    assert_eq!(
        theirs["creator"],
        ours.created_by().unwrap_or(""),
        "{what}: created by"
    );
    assert_eq!(
        theirs["creation_date"],
        ours.creation_date().unwrap_or(0),
        "{what}: creation date"
    );
}
