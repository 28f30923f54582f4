//! `basalt testnet --docker`: the same homes, rewired for containers, and a
//! `docker-compose.yml` that runs each node in its own container with a fixed address on a
//! private network (a `FROM scratch` image has no name lookup, DESIGN.md §8) and its RPC
//! published on the host's loopback at the port the plain testnet would use.

use crate::config::Config;
use crate::home::Home;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The containers' private network.
pub const SUBNET: &str = "172.30.0.0/24";
/// Inside every container: P2P and RPC ports.
pub const P2P_PORT: u16 = 26656;
pub const RPC_PORT: u16 = 26657;
/// The image `tests/e2e/run.sh` builds.
pub const IMAGE: &str = "basalt:local";

pub fn node_ip(k: usize) -> String {
    format!("172.30.0.{}", 10 + k)
}

/// Rewrites each home's config for its container and writes `output/docker-compose.yml`.
pub fn write(output: &Path, homes: &[Home], base_port: u16) -> Result<()> {
    for (k, h) in homes.iter().enumerate() {
        let mut c = Config::load(&h.config_file())?;
        c.p2p.listen = format!("{}:{P2P_PORT}", node_ip(k));
        c.rpc.listen = format!("0.0.0.0:{RPC_PORT}");
        c.p2p.persistent_peers = (0..homes.len())
            .filter(|j| *j != k)
            .map(|j| format!("{}:{P2P_PORT}", node_ip(j)))
            .collect();
        std::fs::write(h.config_file(), c.render())
            .with_context(|| format!("writing {}", h.config_file().display()))?;
    }
    let mut y = String::from(
        "# Written by `basalt testnet --docker`: one container per node.\nversion: \"2.4\"\nservices:\n",
    );
    for k in 0..homes.len() {
        let rpc = base_port as usize + 2 * k + 1;
        let _ = write!(
            y,
            "  node{k}:\n    image: {IMAGE}\n    container_name: basalt-node{k}\n    command: [\"start\", \"--home\", \"/home/basalt\"]\n    environment:\n      RUST_LOG: info,libp2p=warn\n    volumes:\n      - ./node{k}:/home/basalt\n    networks:\n      basalt:\n        ipv4_address: {ip}\n    ports:\n      - \"127.0.0.1:{rpc}:{RPC_PORT}\"\n",
            ip = node_ip(k)
        );
    }
    let _ = write!(
        y,
        "networks:\n  basalt:\n    driver: bridge\n    ipam:\n      config:\n        - subnet: {SUBNET}\n"
    );
    let path = output.join("docker-compose.yml");
    std::fs::write(&path, y).with_context(|| format!("writing {}", path.display()))
}
