//! Network namespaces for tests: created with `ip netns add`, linked by veth pairs, deleted
//! on drop. Needs root (CI runs as root).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{output_with_timeout, require_program};

/// A network namespace named `<prefix><pid>`; deleted (with its links) on drop.
#[derive(Debug)]
pub struct NetNs {
    ip: PathBuf,
    /// Its name.
    pub name: String,
}

fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let out = output_with_timeout(cmd, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    /// Creates the namespace with its loopback up.
    ///
    /// # Panics
    /// Without root or `ip`.
    #[must_use]
    pub fn create(prefix: &str) -> Self {
        let ip = require_program("ip", "iproute2");
        let name = format!("{prefix}{}", std::process::id());
        run(Command::new(&ip).args(["netns", "add", &name]));
        let ns = Self { ip, name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n <ns> <args>`.
    ///
    /// # Panics
    /// When the command fails.
    pub fn ip(&self, args: &[&str]) {
        run(Command::new(&self.ip).args(["-n", &self.name]).args(args));
    }

    /// `ip netns exec <ns>`, ready for a program and its arguments.
    #[must_use]
    pub fn exec(&self) -> Command {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &self.name]);
        cmd
    }

    /// Links `self` and `other` with a veth pair and gives each end an address
    /// (`10.x.y.z/24` style, with prefix), up, with the multicast range routed over it.
    ///
    /// # Panics
    /// When a command fails.
    pub fn link(&self, addr: &str, other: &Self, other_addr: &str) {
        let (a, b) = self.link_named("a", addr, other, "b", other_addr);
        self.ip(&["route", "add", "224.0.0.0/4", "dev", &a]);
        other.ip(&["route", "add", "224.0.0.0/4", "dev", &b]);
    }

    /// Links `self` and `other` with a veth pair named `v<pid><tag>` and `v<pid><other_tag>`
    /// (tags of a few characters: a device name has at most 15), each end with its address
    /// and up, without the multicast route of [`NetNs::link`] (a namespace may have several
    /// such links). Returns the two device names.
    ///
    /// # Panics
    /// When a command fails.
    pub fn link_named(
        &self,
        tag: &str,
        addr: &str,
        other: &Self,
        other_tag: &str,
        other_addr: &str,
    ) -> (String, String) {
        let (a, b) = (
            format!("v{}{tag}", std::process::id()),
            format!("v{}{other_tag}", std::process::id()),
        );
        run(Command::new(&self.ip).args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
        run(Command::new(&self.ip).args(["link", "set", &a, "netns", &self.name]));
        run(Command::new(&self.ip).args(["link", "set", &b, "netns", &other.name]));
        for (ns, dev, address) in [(self, &a, addr), (other, &b, other_addr)] {
            ns.ip(&["addr", "add", address, "dev", dev]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        (a, b)
    }

    /// Links `self` to the host's own namespace with a veth pair named `v<pid><tag>` (in
    /// `self`) and `v<pid><host_tag>` (on the host), each end with its address and up.
    /// Deleting the namespace deletes the pair. Returns the two device names.
    ///
    /// # Panics
    /// When a command fails.
    pub fn link_to_host(
        &self,
        tag: &str,
        addr: &str,
        host_tag: &str,
        host_addr: &str,
    ) -> (String, String) {
        let (a, b) = (
            format!("v{}{tag}", std::process::id()),
            format!("v{}{host_tag}", std::process::id()),
        );
        run(Command::new(&self.ip).args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
        run(Command::new(&self.ip).args(["link", "set", &a, "netns", &self.name]));
        self.ip(&["addr", "add", addr, "dev", &a]);
        self.ip(&["link", "set", &a, "up"]);
        run(Command::new(&self.ip).args(["addr", "add", host_addr, "dev", &b]));
        run(Command::new(&self.ip).args(["link", "set", &b, "up"]));
        (a, b)
    }

    /// Runs `args` (a program and its arguments) in the namespace.
    ///
    /// # Panics
    /// When the command fails.
    pub fn run(&self, args: &[&str]) {
        run(self.exec().args(args));
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
