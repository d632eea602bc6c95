//! A network namespace of one test's own, joined to the host by a veth pair on a private /30:
//! the host side has `host_ip`, the namespace side `ns_ip`. Made for tests that need a process
//! reachable at an address other than loopback (the API server's service proxy refuses
//! loopback endpoints), without touching any address that exists on this machine.
//!
//! Needs root and `ip` (iproute2); creating one never degrades into skipping: it panics with
//! the reason. The namespace and both veth ends are removed when the value is dropped, panic
//! or not.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Subnets are taken from 10.213.0.0/16, one /30 each.
const POOL: [u8; 2] = [10, 213];

pub struct NetNs {
    name: String,
    host_if: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
}

impl NetNs {
    /// Creates the namespace, the veth pair and their addresses, and brings them up.
    pub fn create() -> NetNs {
        // Choosing a subnet and claiming it (assigning the host address adds its route) must
        // not interleave between tests of this process; other processes see the route.
        static CLAIM: Mutex<()> = Mutex::new(());
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let _claim = CLAIM.lock().unwrap_or_else(|e| e.into_inner());

        // Names are unique per process and run (pid + counter); interface names must stay
        // within 15 bytes.
        let tag = format!(
            "{:x}{}",
            std::process::id() & 0xfffff,
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let name = format!("enseal-it-{tag}");
        let host_if = format!("ensh{tag}");
        let ns_if = format!("ensn{tag}");
        assert!(host_if.len() <= 15, "interface name {host_if} is too long");

        let taken = routed_prefixes();
        let base = free_subnet(&taken, std::process::id()).unwrap_or_else(|| {
            panic!("no /30 in 10.213.0.0/16 is free of existing routes: {taken:?}")
        });
        let host_ip = Ipv4Addr::from(u32::from(base) + 1);
        let ns_ip = Ipv4Addr::from(u32::from(base) + 2);

        ip(&["netns", "add", &name]);
        // From here on, Drop cleans up whatever was made.
        let netns = NetNs {
            name,
            host_if,
            host_ip,
            ns_ip,
        };
        let n = netns.name.as_str();
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
            "netns",
            n,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &netns.host_if,
        ]);
        ip(&["link", "set", &netns.host_if, "up"]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", n, "link", "set", &ns_if, "up"]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        netns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's end of the pair: what processes inside the namespace connect to.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The namespace's end: what the host connects to.
    pub fn ns_ip(&self) -> Ipv4Addr {
        self.ns_ip
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both; deleting the namespace would too, but
        // only once no process holds it any more.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `ip ARGS`; panics with its error output when it fails (or when there is no `ip`).
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?} (iproute2 is needed): {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed (root and network namespaces are needed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every IPv4 prefix in any routing table of the host (local addresses included).
fn routed_prefixes() -> Vec<(Ipv4Addr, u8)> {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .unwrap_or_else(|e| panic!("running ip route (iproute2 is needed): {e}"));
    assert!(
        out.status.success(),
        "ip route failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_routes(&String::from_utf8_lossy(&out.stdout))
}

/// The destinations of `ip -4 route show table all`: the first word, after a route type
/// (`local`, `broadcast`, ...) when there is one; `default` is left out (it covers
/// everything, and a more specific route is what decides where a packet goes).
fn parse_routes(text: &str) -> Vec<(Ipv4Addr, u8)> {
    const TYPES: [&str; 9] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "unreachable",
        "prohibit",
        "blackhole",
        "throw",
    ];
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let mut dest = words.next()?;
            if TYPES.contains(&dest) {
                dest = words.next()?;
            }
            let (addr, len) = dest.split_once('/').unwrap_or((dest, "32"));
            Some((addr.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

/// The network address of a /30 in [`POOL`] that overlaps none of `taken`, starting from a
/// place that `seed` picks (so that two test processes rarely try the same one first).
fn free_subnet(taken: &[(Ipv4Addr, u8)], seed: u32) -> Option<Ipv4Addr> {
    let count = 1u32 << 14; // /30s in a /16
    let pool = u32::from(Ipv4Addr::new(POOL[0], POOL[1], 0, 0));
    (0..count)
        .map(|i| Ipv4Addr::from(pool + (((seed.wrapping_mul(2_654_435_761) >> 8) + i) % count) * 4))
        .find(|&net| !taken.iter().any(|&(a, len)| overlaps((net, 30), (a, len))))
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let len = a.1.min(b.1).min(32);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a.0) & mask == u32::from(b.0) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_of_every_type_are_read_and_default_is_left_out() {
        let text = "default via 192.0.2.1 dev eth0\n\
                    192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                    local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1\n\
                    broadcast 10.213.5.3 dev x table local proto kernel scope link src 10.213.5.1\n";
        assert_eq!(
            parse_routes(text),
            vec![
                (Ipv4Addr::new(192, 0, 2, 0), 24),
                (Ipv4Addr::new(127, 0, 0, 0), 8),
                (Ipv4Addr::new(10, 213, 5, 3), 32),
            ]
        );
    }

    #[test]
    fn a_subnet_overlapping_a_route_is_not_chosen() {
        let taken = [(Ipv4Addr::new(10, 213, 0, 0), 17)];
        for seed in [0, 1, 77, u32::MAX] {
            let net = free_subnet(&taken, seed).unwrap();
            assert!(net >= Ipv4Addr::new(10, 213, 128, 0), "{net}");
            assert_eq!(u32::from(net) % 4, 0);
        }
        assert_eq!(
            free_subnet(&[(Ipv4Addr::new(10, 0, 0, 0), 8)], 3),
            None,
            "a route covering the whole pool leaves nothing"
        );
    }
}
