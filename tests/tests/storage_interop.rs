//! lt-storage against libtorrent-rasterbar 2.0 (`python3-libtorrent`): a payload downloaded
//! by libtorrent with its resume data is loaded without a recheck and every piece verifies,
//! and resume data written by lt-storage is accepted by libtorrent without a recheck.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lt_core::PieceIndex;
use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_storage::{FsOptions, FsStorage, ResumeData, Storage, check_files, verify_piece};
use serde_json::Value;

/// Longest a python run may take; the scripts bound their own waits to 60 s.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

const SESSION_PY: &str = r#"
import json, sys, time
import libtorrent as lt

def session():
    s = lt.high_performance_seed()
    s.update({
        'listen_interfaces': '127.0.0.1:0',
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
        'allow_multiple_connections_per_ip': True, 'tick_interval': 100,
        'smooth_connects': False, 'connection_speed': 500, 'peer_connect_timeout': 3,
        'min_reconnect_time': 1, 'alert_mask': lt.alert_category.all,
    })
    return lt.session(s)

def wait_alert(ses, kind, timeout=60):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            seen.append(a)
            if isinstance(a, kind):
                return a, seen
    raise SystemExit('timed out waiting for %s' % kind.__name__)
"#;

/// Seeds `argv[2]` and downloads it into `argv[3]` with a second session, then writes the
/// leecher's resume data to `argv[4]`.
const DOWNLOAD_PY: &str = r#"
torrent, seed_dir, leech_dir, out = sys.argv[1:5]
seeder, leecher = session(), session()
sh = seeder.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': seed_dir,
                         'flags': lt.torrent_flags.seed_mode})
lh = leecher.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': leech_dir})
deadline = time.time() + 60
while not lh.status().is_seeding:
    if time.time() > deadline:
        raise SystemExit('download timed out: %s' % lh.status().state)
    if lh.status().num_peers == 0:
        lh.connect_peer(('127.0.0.1', seeder.listen_port()))
    time.sleep(0.1)
lh.save_resume_data(lt.torrent_handle.flush_disk_cache | lt.torrent_handle.save_info_dict)
a, _ = wait_alert(leecher, lt.save_resume_data_alert)
open(out, 'wb').write(lt.write_resume_data_buf(a.params))
print(json.dumps({'pieces': lh.status().num_pieces}))
"#;

/// Adds the torrent from the resume data in `argv[1]` with save path `argv[2]`; reports the
/// pieces libtorrent takes from it, whether it was rejected, and the pieces after a recheck.
const LOAD_PY: &str = r#"
resume, save = sys.argv[1:3]
ses = session()
atp = lt.read_resume_data(open(resume, 'rb').read())
atp.save_path = save
h = ses.add_torrent(atp)
_, seen = wait_alert(ses, lt.torrent_checked_alert)
rejected = [a.message() for a in seen if isinstance(a, lt.fastresume_rejected_alert)]
n = h.torrent_file().num_pieces()
before = [i for i in range(n) if h.have_piece(i)]
h.force_recheck()
wait_alert(ses, lt.torrent_checked_alert)
after = [i for i in range(n) if h.have_piece(i)]
print(json.dumps({'rejected': rejected, 'before': before, 'after': after, 'num_pieces': n}))
"#;

fn run_python(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(format!("{SESSION_PY}\n{script}"))
        .args(args);
    let output = lt_tests::output_with_timeout(&mut cmd, CHILD_TIMEOUT)
        .unwrap_or_else(|e| panic!("python libtorrent script {args:?}: {e}"));
    assert!(
        output.status.success(),
        "python libtorrent script {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let out = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

/// A multi-file payload with odd sizes under `dir/payload`, and its hybrid torrent (pad files).
fn payload(dir: &Path) -> (std::path::PathBuf, TorrentInfo) {
    let root = dir.join("payload");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let mut x: u32 = 12345;
    for (name, size) in [
        ("a.bin", 300_001usize),
        ("sub/b.bin", 7),
        ("c.bin", 1_000_000),
    ] {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16).to_le_bytes()[0]
            })
            .collect();
        std::fs::write(root.join(name), data).unwrap();
    }
    let bytes = CreateTorrent::new(&root)
        .piece_size(65536)
        .version(TorrentVersion::Hybrid)
        .generate()
        .unwrap();
    let path = dir.join("payload.torrent");
    std::fs::write(&path, &bytes).unwrap();
    (path, TorrentInfo::from_bytes(&bytes).unwrap())
}

#[test]
fn libtorrent_download_and_resume_load_without_recheck() {
    let python = lt_tests::require_python_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (torrent, info) = payload(dir.path());
    let leech = dir.path().join("leech");
    std::fs::create_dir_all(&leech).unwrap();
    let resume_path = dir.path().join("leech.resume");
    let out = run_python(
        python,
        DOWNLOAD_PY,
        &[
            torrent.as_os_str(),
            dir.path().as_os_str(),
            leech.as_os_str(),
            resume_path.as_os_str(),
        ],
    );
    assert_eq!(out["pieces"], u64::from(info.num_pieces()));

    let resume = ResumeData::from_bytes(&std::fs::read(&resume_path).unwrap()).unwrap();
    assert_eq!(resume.info_hash, info.info_hash().v1_hash());
    assert_eq!(resume.info_hash2, info.info_hash().v2_hash());
    let storage = FsStorage::new(info.files().clone(), &leech, FsOptions::default()).unwrap();
    // Accepted as is: no recheck needed.
    let have = lt_storage::verify_resume(&resume, &info, &storage).unwrap();
    assert!(have.all(), "{have:?}");
    // And every piece it vouches for really verifies.
    let mut buf = Vec::new();
    for p in have.iter_ones() {
        let p = PieceIndex::new(u32::try_from(p).unwrap());
        assert!(
            verify_piece(&storage, &info, p, &mut buf).unwrap(),
            "piece {p}"
        );
    }
    // Our re-encoding of their data is still theirs (unknown keys kept).
    let again = ResumeData::from_bytes(&resume.to_bytes()).unwrap();
    assert_eq!(again, resume);
}

#[test]
fn our_resume_data_is_accepted_by_libtorrent() {
    let python = lt_tests::require_python_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (_torrent, info) = payload(dir.path());
    let save = dir.path().join("ours");
    // Write the payload piece by piece, in reverse order, through lt-storage.
    let src = FsStorage::new(info.files().clone(), dir.path(), FsOptions::default()).unwrap();
    let dst = FsStorage::new(info.files().clone(), &save, FsOptions::default()).unwrap();
    dst.initialize().unwrap();
    let mut buf = Vec::new();
    for p in (0..info.num_pieces()).rev() {
        let piece = PieceIndex::new(p);
        lt_storage::read_piece(&src, piece, &mut buf).unwrap();
        dst.write(piece, 0, &[&buf]).unwrap();
    }
    dst.flush().unwrap();
    let all = check_files(&dst, &info, 2).unwrap();
    assert!(all.all());
    // Claim only the even pieces: if libtorrent reports exactly those, it trusted our
    // resume data instead of checking the files (which hold every piece).
    let mut resume = ResumeData::new(&info);
    for p in (0..info.num_pieces() as usize).step_by(2) {
        resume.pieces.set(p);
    }
    lt_storage::record_file_sizes(&mut resume, &dst).unwrap();
    resume.save_path = Some(save.to_string_lossy().into_owned());
    let resume_path = dir.path().join("ours.resume");
    std::fs::write(&resume_path, resume.to_bytes()).unwrap();

    let out = run_python(
        python,
        LOAD_PY,
        &[resume_path.as_os_str(), save.as_os_str()],
    );
    assert_eq!(out["rejected"], Value::Array(vec![]), "{out}");
    let even: Vec<Value> = (0..info.num_pieces()).step_by(2).map(Value::from).collect();
    assert_eq!(out["before"], Value::Array(even), "{out}");
    let every: Vec<Value> = (0..info.num_pieces()).map(Value::from).collect();
    assert_eq!(out["after"], Value::Array(every), "{out}");
}

/// Writes resume data with unfinished pieces (blocks 0, 3 and 9 of piece 3) to `argv[1]`,
/// then reads the resume data in `argv[2]` and prints its unfinished pieces.
const UNFINISHED_PY: &str = r#"
out, ours = sys.argv[1:3]
atp = lt.add_torrent_params()
atp.info_hashes = lt.info_hash_t(lt.sha1_hash(b'a' * 20))
atp.unfinished_pieces = {3: [i in (0, 3, 9) for i in range(16)]}
open(out, 'wb').write(lt.write_resume_data_buf(atp))
r = lt.read_resume_data(open(ours, 'rb').read())
print(json.dumps({str(k): [i for i, b in enumerate(v) if b] for k, v in r.unfinished_pieces.items()}))
"#;

#[test]
fn unfinished_piece_bitmasks_match_libtorrent() {
    let python = lt_tests::require_python_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs.resume");
    let ours = dir.path().join("ours.resume");
    let mut r = ResumeData {
        info_hash: Some(lt_core::Sha1Hash::from([b'b'; 20])),
        ..ResumeData::default()
    };
    let mut u = lt_storage::UnfinishedPiece {
        piece: PieceIndex::new(5),
        bitmask: vec![0; 2],
    };
    for b in [1, 2, 8, 15] {
        u.set_block(b);
    }
    r.unfinished.push(u);
    std::fs::write(&ours, r.to_bytes()).unwrap();
    let out = run_python(
        python,
        UNFINISHED_PY,
        &[theirs.as_os_str(), ours.as_os_str()],
    );
    assert_eq!(out, serde_json::json!({"5": [1, 2, 8, 15]}));
    let parsed = ResumeData::from_bytes(&std::fs::read(&theirs).unwrap()).unwrap();
    let u = &parsed.unfinished[0];
    assert_eq!(u.piece, PieceIndex::new(3));
    let blocks: Vec<usize> = (0..16).filter(|&i| u.has_block(i)).collect();
    assert_eq!(blocks, [0, 3, 9]);
    assert_eq!(
        parsed.info_hash2, None,
        "libtorrent's all-zero v2 hash means none"
    );
}
