//! `cargo xtask deps`: the layering and sans-IO rules of STYLE.md sections 1 and 3.
//!
//! - Each workspace package's normal and build dependencies on `lt-*` crates must be allowed
//!   by [`LAYERS`]; a package missing from the table is an error, so adding a crate forces a
//!   decision about its layer.
//! - Protocol crates (every `lt-*` crate but the I/O shell and the tooling) may not depend on
//!   runtime or OS-networking crates ([`FORBIDDEN_IN_PROTOCOL`]), and their `src/` may not
//!   read the clock, use OS randomness or name tokio ([`FORBIDDEN_CALLS`]). Comments are not
//!   scanned, so docs may say "never calls `Instant::now()`" and show a std::net run loop.
//! - The one exception is ARCHITECTURE.md's thin driver "behind a feature such as `tokio`":
//!   a protocol crate may name a runtime crate as an *optional* dependency, and its
//!   feature-gated shell ([`DRIVER_PATHS`]: `src/driver/` as in lt-nat, or `src/tokio.rs` as
//!   in lt-utp and lt-dht) is not scanned. The core still builds and is checked without the
//!   feature.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd;

/// What a package may depend on among our crates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Allowed {
    /// Exactly these `lt-*` crates (or a subset).
    Only(&'static [&'static str]),
    /// Any crate: tests, fuzzing and tooling, which nothing depends on.
    Any,
}

/// Whether a package must stay sans-IO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A protocol crate or the engine: no runtime, no clock, no OS randomness.
    Protocol,
    /// The I/O shell (lt-session) and the binary (lt-cli).
    Shell,
    /// xtask, lt-tests, lt-fuzz.
    Tooling,
}

/// Protocol crates and, last, the engine (lt-session may use all of them).
const BELOW_SESSION: &[&str] = &[
    "lt-core",
    "lt-bencode",
    "lt-metainfo",
    "lt-wire",
    "lt-picker",
    "lt-storage",
    "lt-tracker",
    "lt-dht",
    "lt-utp",
    "lt-nat",
    "lt-engine",
];

/// Every crate of the protocol layer: the list above without the engine (the tests check
/// [`ENGINE`] against it).
#[cfg(test)]
const PROTOCOL: &[&str] = match BELOW_SESSION.split_last() {
    Some((_, protocol)) => protocol,
    None => &[],
};

/// What lt-engine may use: every protocol crate but lt-storage, which does file I/O. The
/// engine asks for disk work with `DiskJob`s, and `ResumeData` is lt-metainfo's.
const ENGINE: &[&str] = &[
    "lt-core",
    "lt-bencode",
    "lt-metainfo",
    "lt-wire",
    "lt-picker",
    "lt-tracker",
    "lt-dht",
    "lt-utp",
    "lt-nat",
];

/// STYLE.md section 3: each workspace package, its role, and the `lt-*` crates it may use.
pub(crate) const LAYERS: &[(&str, Role, Allowed)] = &[
    ("lt-core", Role::Protocol, Allowed::Only(&[])),
    ("lt-bencode", Role::Protocol, Allowed::Only(&["lt-core"])),
    (
        "lt-metainfo",
        Role::Protocol,
        Allowed::Only(&["lt-core", "lt-bencode"]),
    ),
    (
        "lt-wire",
        Role::Protocol,
        Allowed::Only(&["lt-core", "lt-bencode"]),
    ),
    ("lt-picker", Role::Protocol, Allowed::Only(&["lt-core"])),
    (
        "lt-storage",
        Role::Protocol,
        Allowed::Only(&["lt-core", "lt-bencode", "lt-metainfo"]),
    ),
    (
        "lt-tracker",
        Role::Protocol,
        Allowed::Only(&["lt-core", "lt-bencode"]),
    ),
    (
        "lt-dht",
        Role::Protocol,
        Allowed::Only(&["lt-core", "lt-bencode"]),
    ),
    ("lt-utp", Role::Protocol, Allowed::Only(&[])),
    ("lt-nat", Role::Protocol, Allowed::Only(&[])),
    ("lt-engine", Role::Protocol, Allowed::Only(ENGINE)),
    ("lt-session", Role::Shell, Allowed::Only(BELOW_SESSION)),
    // lt-cli prints hashes and values, so it may also use lt-core and lt-bencode directly.
    (
        "lt-cli",
        Role::Shell,
        Allowed::Only(&["lt-session", "lt-metainfo", "lt-core", "lt-bencode"]),
    ),
    ("lt-tests", Role::Tooling, Allowed::Any),
    ("lt-fuzz", Role::Tooling, Allowed::Any),
    ("xtask", Role::Tooling, Allowed::Any),
];

/// Runtime and OS-networking crates that only lt-session, lt-cli, tests and xtask may use.
pub(crate) const FORBIDDEN_IN_PROTOCOL: &[&str] = &[
    "tokio",
    "tokio-util",
    "socket2",
    "mio",
    "reqwest",
    "hyper",
    "ureq",
    "async-std",
    "smol",
];

/// Text that may not appear in a protocol crate's code (outside comments), and why.
pub(crate) const FORBIDDEN_CALLS: &[(&str, &str)] = &[
    ("Instant::now", "time is a `now: Instant` parameter"),
    (
        "SystemTime::now",
        "wall-clock time is a `SystemTime` parameter",
    ),
    (
        "thread_rng",
        "randomness comes from a seeded RNG in the config",
    ),
    (
        "rand::rng(",
        "randomness comes from a seeded RNG in the config",
    ),
    ("OsRng", "randomness comes from a seeded RNG in the config"),
    (
        "from_entropy",
        "randomness comes from a seeded RNG in the config",
    ),
    (
        "from_os_rng",
        "randomness comes from a seeded RNG in the config",
    ),
    ("tokio::", "no runtime in protocol crates"),
];

/// A workspace package as `cargo metadata` describes it.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) deps: Vec<Dep>,
}

/// One dependency of a package.
#[derive(Debug, Clone)]
pub(crate) struct Dep {
    /// The package name (not a `package = ...` rename).
    pub(crate) name: String,
    /// `None` for normal, `Some("dev")`, `Some("build")`.
    pub(crate) kind: Option<String>,
    /// Only enabled by a cargo feature.
    pub(crate) optional: bool,
}

/// A broken rule, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) location: String,
    pub(crate) message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Runs every check on the current workspace.
pub(crate) fn run() -> Result<()> {
    let packages = workspace_packages()?;
    let mut problems = check_graph(&packages);
    for krate in protocol_crates(&packages) {
        if let Some(pkg) = packages.iter().find(|p| p.name == krate) {
            problems.extend(scan_dir(&pkg.dir.join("src"))?);
        }
    }
    if problems.is_empty() {
        println!(
            "deps: {} workspace packages follow the layer table; protocol crates are sans-IO",
            packages.len()
        );
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    bail!(
        "{} dependency rule violation(s) (STYLE.md sections 1 and 3; the table is in \
         xtask/src/deps.rs)",
        problems.len()
    )
}

/// The workspace members, from `cargo metadata --format-version 1 --no-deps`.
pub(crate) fn workspace_packages() -> Result<Vec<Package>> {
    let out = cmd::output(&mut cmd::cargo([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    let metadata: Value =
        serde_json::from_slice(&out).context("cargo metadata printed invalid JSON")?;
    parse_metadata(&metadata)
}

/// Extracts the workspace members from `cargo metadata` output.
pub(crate) fn parse_metadata(metadata: &Value) -> Result<Vec<Package>> {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata: no `workspace_members`")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata: no `packages`")?;
    let mut out = Vec::new();
    for pkg in packages {
        let id = pkg["id"].as_str().unwrap_or_default();
        if !members.contains(&id) {
            continue;
        }
        let name = pkg["name"]
            .as_str()
            .context("cargo metadata: package without a name")?
            .to_owned();
        let manifest = pkg["manifest_path"]
            .as_str()
            .with_context(|| format!("cargo metadata: {name} has no manifest_path"))?;
        let dir = Path::new(manifest)
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let deps = pkg["dependencies"]
            .as_array()
            .map(|deps| {
                deps.iter()
                    .map(|d| Dep {
                        name: d["name"].as_str().unwrap_or_default().to_owned(),
                        kind: d["kind"].as_str().map(str::to_owned),
                        optional: d["optional"].as_bool().unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Package { name, dir, deps });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The names of the workspace's protocol crates: every `lt-*` package that is not the shell or
/// tooling (a package missing from [`LAYERS`] counts as a protocol crate, the strict choice).
pub(crate) fn protocol_crates(packages: &[Package]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| p.name.starts_with("lt-"))
        .filter(|p| role(&p.name).is_none_or(|r| r == Role::Protocol))
        .map(|p| p.name.clone())
        .collect()
}

/// Checks every package's normal and build dependencies against [`LAYERS`] and
/// [`FORBIDDEN_IN_PROTOCOL`]. Dev-dependencies are free.
pub(crate) fn check_graph(packages: &[Package]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for pkg in packages {
        let location = format!("{} ({})", pkg.name, pkg.dir.join("Cargo.toml").display());
        let Some((_, role, allowed)) = LAYERS.iter().find(|(name, ..)| *name == pkg.name) else {
            problems.push(Problem {
                location,
                message: "not in the layer table: add it to LAYERS in xtask/src/deps.rs and \
                          to STYLE.md section 3"
                    .to_owned(),
            });
            continue;
        };
        for dep in pkg.deps.iter().filter(|d| d.kind.as_deref() != Some("dev")) {
            let kind = dep.kind.as_deref().unwrap_or("normal");
            if dep.name.starts_with("lt-")
                && let Allowed::Only(allowed) = allowed
                && !allowed.contains(&dep.name.as_str())
            {
                problems.push(Problem {
                    location: location.clone(),
                    message: format!(
                        "{kind} dependency on {} is not allowed (may use: {})",
                        dep.name,
                        if allowed.is_empty() {
                            "no lt-* crate".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                });
            }
            // An optional dependency is the feature-gated driver's (see the module docs).
            if *role == Role::Protocol
                && !dep.optional
                && FORBIDDEN_IN_PROTOCOL.contains(&dep.name.as_str())
            {
                problems.push(Problem {
                    location: location.clone(),
                    message: format!(
                        "{kind} dependency on {} in a protocol crate: runtime and networking \
                         crates belong in lt-session",
                        dep.name
                    ),
                });
            }
        }
    }
    problems
}

/// Paths under a protocol crate's `src/` that hold its feature-gated tokio driver, which
/// [`scan_dir`] skips: a directory or a single file.
pub(crate) const DRIVER_PATHS: &[&str] = &["driver", "tokio.rs"];

/// Scans every `.rs` file under `dir` with [`scan_source`], except the driver's
/// ([`DRIVER_PATHS`]) and unit-test modules kept in their own file, named `*_tests.rs`
/// (`#[cfg(test)] #[path = "connection_tests.rs"] mod tests;`), which like a file's own
/// `#[cfg(test)]` module may read the clock.
fn scan_dir(dir: &Path) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    collect_rs_files(dir, &mut files)?;
    files.retain(|f| !DRIVER_PATHS.iter().any(|p| f.starts_with(dir.join(p))));
    files.retain(|f| {
        !f.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("_tests.rs"))
    });
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        problems.extend(scan_source(&file.display().to_string(), &text));
    }
    Ok(problems)
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Finds [`FORBIDDEN_CALLS`] in Rust source, skipping comments (including doc comments and
/// the examples in them) and the top-level `#[cfg(test)]` module. Reports `file:line`.
pub(crate) fn scan_source(file: &str, text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut in_block_comment = 0usize;
    for (index, line) in text.lines().enumerate() {
        // A file's unit-test module (a top-level `#[cfg(test)]`, last by convention) may
        // read the clock to start its own time; the code it tests takes `now` as a parameter.
        if line == "#[cfg(test)]" {
            break;
        }
        let code = strip_comments(line, &mut in_block_comment);
        for (needle, why) in FORBIDDEN_CALLS {
            if code.contains(needle) {
                problems.push(Problem {
                    location: format!("{file}:{}", index + 1),
                    message: format!("`{needle}` in a protocol crate: {why} (STYLE.md section 1)"),
                });
            }
        }
    }
    problems
}

/// The code part of `line`: without `//` comments and `/* */` comments (nesting depth carried
/// across lines in `depth`). String literals are kept, so `"http://"` is not a comment.
fn strip_comments(line: &str, depth: &mut usize) -> String {
    let mut code = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if *depth > 0 {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                *depth -= 1;
            } else if c == '/' && chars.peek() == Some(&'*') {
                chars.next();
                *depth += 1;
            }
            continue;
        }
        if in_string {
            code.push(c);
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    code.push(escaped);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                code.push(c);
            }
            // The char literal '"' does not start a string.
            '\'' if chars.peek() == Some(&'"') => {
                code.push(c);
                code.extend(chars.next());
            }
            '/' if chars.peek() == Some(&'/') => break,
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                *depth += 1;
            }
            _ => code.push(c),
        }
    }
    code
}

fn role(name: &str) -> Option<Role> {
    LAYERS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, role, _)| *role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn protocol_is_below_session_without_the_engine() {
        assert_eq!(BELOW_SESSION.last(), Some(&"lt-engine"));
        assert_eq!(PROTOCOL.len() + 1, BELOW_SESSION.len());
        assert!(!PROTOCOL.contains(&"lt-engine"));
        assert!(ENGINE.iter().all(|c| PROTOCOL.contains(c)));
        assert!(!ENGINE.contains(&"lt-storage"));
    }

    fn dep(name: &str, kind: Option<&str>) -> Value {
        json!({ "name": name, "kind": kind, "req": "*", "optional": false })
    }

    fn optional_dep(name: &str) -> Value {
        json!({ "name": name, "kind": null, "req": "*", "optional": true })
    }

    fn package(name: &str, deps: Vec<Value>) -> Value {
        json!({
            "name": name,
            "id": format!("path+file:///w/{name}#0.1.0"),
            "manifest_path": format!("/w/{name}/Cargo.toml"),
            "dependencies": deps,
        })
    }

    fn metadata(packages: Vec<Value>) -> Value {
        let members: Vec<Value> = packages.iter().map(|p| p["id"].clone()).collect();
        json!({ "packages": packages, "workspace_members": members, "version": 1 })
    }

    fn problems(packages: Vec<Value>) -> Vec<String> {
        let parsed = parse_metadata(&metadata(packages)).unwrap();
        check_graph(&parsed)
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn allowed_graph_passes() {
        let found = problems(vec![
            package(
                "lt-core",
                vec![dep("sha1", None), dep("quickcheck", Some("dev"))],
            ),
            package(
                "lt-bencode",
                vec![
                    dep("lt-core", None),
                    dep("serde", None),
                    dep("bendy", Some("dev")),
                ],
            ),
            package(
                "lt-metainfo",
                vec![dep("lt-core", None), dep("lt-bencode", None)],
            ),
            package(
                "lt-cli",
                vec![
                    dep("lt-session", None),
                    dep("lt-core", None),
                    dep("tokio", None),
                ],
            ),
            package(
                "lt-tests",
                vec![dep("lt-session", None), dep("tokio", None)],
            ),
            package("xtask", vec![dep("anyhow", None)]),
        ]);
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn sideways_and_upward_edges_fail() {
        let found = problems(vec![
            package("lt-core", vec![dep("lt-bencode", None)]),
            package(
                "lt-wire",
                vec![dep("lt-core", None), dep("lt-dht", Some("build"))],
            ),
            package("lt-utp", vec![dep("lt-core", None)]),
        ]);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("lt-core (/w/lt-core/Cargo.toml)"));
        assert!(found[0].contains("normal dependency on lt-bencode is not allowed"));
        assert!(found[0].contains("no lt-* crate"));
        // Sorted by package name.
        assert!(found[1].starts_with("lt-utp"));
        assert!(found[2].contains("build dependency on lt-dht"));
    }

    #[test]
    fn dev_dependencies_are_free() {
        let found = problems(vec![package(
            "lt-picker",
            vec![
                dep("lt-core", None),
                dep("lt-wire", Some("dev")),
                dep("tokio", Some("dev")),
            ],
        )]);
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn unknown_package_fails() {
        let found = problems(vec![package("lt-webseed", vec![])]);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("not in the layer table"), "{found:?}");
    }

    #[test]
    fn runtime_crates_fail_in_protocol_crates_only() {
        let found = problems(vec![
            package("lt-dht", vec![dep("lt-core", None), dep("tokio", None)]),
            package("lt-engine", vec![dep("socket2", None)]),
            package(
                "lt-session",
                vec![dep("tokio", None), dep("lt-engine", None)],
            ),
        ]);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("lt-dht") && found[0].contains("tokio"));
        assert!(found[1].contains("lt-engine") && found[1].contains("socket2"));
    }

    #[test]
    fn optional_runtime_crate_is_the_feature_gated_driver() {
        let found = problems(vec![package(
            "lt-nat",
            vec![dep("thiserror", None), optional_dep("tokio")],
        )]);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn scan_dir_skips_the_driver_directory() {
        let dir = std::env::temp_dir().join(format!("lt-xtask-deps-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("driver")).unwrap();
        std::fs::write(dir.join("lib.rs"), "fn f() { Instant::now(); }\n").unwrap();
        std::fs::write(
            dir.join("driver").join("mod.rs"),
            "fn g() { tokio::spawn(x); }\n",
        )
        .unwrap();
        std::fs::write(dir.join("tokio.rs"), "fn h() { Instant::now(); }\n").unwrap();
        std::fs::write(dir.join("conn_tests.rs"), "fn t() { Instant::now(); }\n").unwrap();
        let found = scan_dir(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].location.ends_with("lib.rs:1"));
    }

    #[test]
    fn non_members_are_ignored() {
        let mut meta = metadata(vec![package("lt-core", vec![])]);
        meta["packages"]
            .as_array_mut()
            .unwrap()
            .push(package("tokio", vec![dep("lt-wire", None)]));
        let parsed = parse_metadata(&meta).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].dir, Path::new("/w/lt-core"));
    }

    #[test]
    fn protocol_crates_exclude_shell_and_tooling() {
        let parsed = parse_metadata(&metadata(vec![
            package("lt-core", vec![]),
            package("lt-engine", vec![]),
            package("lt-session", vec![]),
            package("lt-cli", vec![]),
            package("lt-tests", vec![]),
            package("lt-new", vec![]),
            package("xtask", vec![]),
        ]))
        .unwrap();
        assert_eq!(protocol_crates(&parsed), ["lt-core", "lt-engine", "lt-new"]);
    }

    #[test]
    fn scan_reports_file_and_line() {
        let src = "use std::time::Instant;\n\
                   fn f() {\n    let t = Instant::now();\n}\n\
                   fn g() { let _ = rand::thread_rng(); tokio::spawn(x); }\n";
        let found: Vec<String> = scan_source("src/lib.rs", src)
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("src/lib.rs:3: `Instant::now`"));
        assert!(found[1].starts_with("src/lib.rs:5: `thread_rng`"));
        assert!(found[2].starts_with("src/lib.rs:5: `tokio::`"));
    }

    #[test]
    fn scan_skips_the_unit_test_module() {
        let src =
            "fn f(now: Instant) {}\n#[cfg(test)]\nmod tests {\n    fn t() { Instant::now(); }\n}\n";
        assert!(scan_source("a.rs", src).is_empty());
        let nested = "fn f() {\n    #[cfg(test)]\n    let t = Instant::now();\n}\n";
        assert_eq!(scan_source("b.rs", nested).len(), 1);
    }

    #[test]
    fn scan_skips_comments_but_not_strings() {
        let src = "//! Never calls `Instant::now()`.\n\
                   /// ```no_run\n/// let now = std::time::Instant::now();\n/// ```\n\
                   fn f() {} // not SystemTime::now\n\
                   /* block\n   OsRng\n*/ fn g() {}\n\
                   const URL: &str = \"http://x\"; fn h() { SystemTime::now(); }\n";
        let found = scan_source("a.rs", src);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].location, "a.rs:9");
        assert!(found[0].message.contains("SystemTime::now"));
    }

    #[test]
    fn layer_table_covers_the_architecture() {
        for name in PROTOCOL
            .iter()
            .chain(["lt-engine", "lt-session", "lt-cli"].iter())
        {
            assert!(role(name).is_some(), "{name} missing from LAYERS");
        }
        assert_eq!(role("lt-session"), Some(Role::Shell));
    }
}
