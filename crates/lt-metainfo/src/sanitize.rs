//! Turning path components from a torrent into names that are safe on disk.

/// Longest component kept, in bytes (most file systems allow 255).
const MAX_COMPONENT_BYTES: usize = 240;

/// Makes one path component from a torrent safe to join under a download directory, the way
/// libtorrent's `sanitize_append_path_element` does. Returns `None` for components that are
/// dropped entirely: empty, `.` and `..`.
///
/// - invalid UTF-8 sequences become `_`;
/// - path separators (`/`, `\`), `:`, NUL and other control characters become `_`, so a
///   component can never name a parent, an absolute path, a Windows drive (`C:`, which
///   `PathBuf::push` would let replace the whole save path) or an NTFS stream (`a:b`);
/// - Windows' reserved device names (`CON`, `NUL`, `COM1`, `LPT¹`, `CONIN$`, ...; any case,
///   with or without an extension) get a `_` appended, and trailing dots and spaces (which
///   Windows strips) are removed.
///
/// The rules are the same on every platform, so a torrent lays out the same files
/// everywhere and a download directory stays safe to copy to Windows.
/// - overlong components are cut to 240 bytes at a character boundary, keeping a short
///   extension.
///
/// ```
/// use lt_metainfo::sanitize_path_component as s;
/// assert_eq!(s(b".."), None);
/// assert_eq!(s(b"a/b").as_deref(), Some("a_b"));
/// assert_eq!(s(b"con.txt").as_deref(), Some("con_.txt"));
/// assert_eq!(s(b"C:").as_deref(), Some("C_"));
/// assert_eq!(s(b"ok \xff name").as_deref(), Some("ok _ name"));
/// ```
#[must_use]
pub fn sanitize_path_component(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '\u{FFFD}' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    while out.ends_with(['.', ' ']) && out != "." && out != ".." {
        out.pop();
    }
    if out.is_empty() || out == "." || out == ".." {
        return None;
    }
    if is_reserved_windows_name(&out) {
        let stem_len = out.find('.').unwrap_or(out.len());
        out.insert(stem_len, '_');
    }
    if out.len() > MAX_COMPONENT_BYTES {
        out = truncate_keeping_extension(&out);
    }
    Some(out)
}

/// Sanitises a list of components, dropping the ones that vanish. An entirely empty result
/// becomes `["_"]` so every file still has a name.
pub(crate) fn sanitize_path<'a>(components: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut out: Vec<String> = components
        .into_iter()
        .filter_map(sanitize_path_component)
        .collect();
    if out.is_empty() {
        out.push("_".to_owned());
    }
    out
}

/// Whether Windows would take `name` for a device: the stem before the first dot, with the
/// trailing spaces Windows ignores, is a reserved name in any case (`nul.txt`, `Com1 .log`).
fn is_reserved_windows_name(name: &str) -> bool {
    const RESERVED: [&str; 32] = [
        "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
        "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2",
        "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
    ];
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem))
}

fn truncate_keeping_extension(name: &str) -> String {
    let ext = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.len() <= 10)
        .unwrap_or("");
    let mut cut = MAX_COMPONENT_BYTES - ext.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_components() {
        for raw in [&b""[..], b".", b".."] {
            assert_eq!(sanitize_path_component(raw), None);
        }
        let cases: &[(&[u8], &str)] = &[
            (b"/etc/passwd", "_etc_passwd"),
            (b"..\\..\\win.ini", ".._.._win.ini"),
            (b"a\0b", "a_b"),
            (b"tab\there", "tab_here"),
            (b"NUL", "NUL_"),
            (b"lpt1.tar.gz", "lpt1_.tar.gz"),
            (b"nul.txt", "nul_.txt"),
            (b"Com9.log", "Com9_.log"),
            ("lpt\u{b9}".as_bytes(), "lpt\u{b9}_"),
            (b"con .txt", "con _.txt"),
            (b"CONIN$", "CONIN$_"),
            (b"aux. .", "aux_"),
            (b"trailing. . ", "trailing"),
            (b"normal name.mkv", "normal name.mkv"),
            ("日本語.txt".as_bytes(), "日本語.txt"),
        ];
        for &(raw, want) in cases {
            assert_eq!(sanitize_path_component(raw).as_deref(), Some(want));
        }
    }

    /// Issue 18, finding 6: `C:` passed and `PathBuf::push("C:")` replaces the save path on
    /// Windows; a colon also names an NTFS alternate data stream.
    #[test]
    fn drive_prefixes_and_streams_are_replaced() {
        let cases: &[(&[u8], &str)] = &[
            (b"C:", "C_"),
            (b"c:", "c_"),
            (b"C:evil", "C_evil"),
            (b"file.txt:stream", "file.txt_stream"),
            (b"D:.", "D_"),
        ];
        for &(raw, want) in cases {
            let got = sanitize_path_component(raw);
            assert_eq!(got.as_deref(), Some(want));
            let mut p = std::path::PathBuf::from("save");
            p.push(got.unwrap());
            assert!(p.starts_with("save"));
            assert_eq!(p.components().count(), 2);
        }
    }

    #[test]
    fn long_names_are_cut_on_char_boundaries() {
        let long = format!("{}.mkv", "é".repeat(300));
        let s = sanitize_path_component(long.as_bytes()).unwrap();
        assert!(s.len() <= MAX_COMPONENT_BYTES);
        assert!(s.ends_with(".mkv"));
    }

    #[test]
    fn empty_paths_get_a_name() {
        assert_eq!(sanitize_path([&b".."[..], b""]), vec!["_".to_owned()]);
        assert_eq!(
            sanitize_path([&b"a"[..], b"..", b"b"]),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}
