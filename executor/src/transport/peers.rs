//! Per-peer limits of the websocket listener: connections one IP address may hold at
//! once (`--ws-max-connections-per-peer`) and new connections it may open per second
//! (`--ws-peer-connection-rate`, a token bucket whose burst is one second's worth), and
//! the per-connection message rate (`--ws-max-messages-per-second`).
//!
//! Peers are counted by IP address, not by port: one client host opening many sockets is
//! one peer. Entries of peers with nothing open and a full bucket are pruned, so the table
//! stays as large as the set of recently active peers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Table size past which idle entries are pruned on the next admission.
const PRUNE_ABOVE: usize = 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerLimits {
    pub max_connections: Option<usize>,
    pub connections_per_second: Option<u32>,
}

#[derive(Debug)]
struct Peer {
    open: usize,
    bucket: Bucket,
}

/// A token bucket refilled at `rate` per second up to `rate`.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    pub fn new(rate: u32) -> Self {
        Self { rate: f64::from(rate), tokens: f64::from(rate), refilled: Instant::now() }
    }

    /// Takes one token; false when none is left.
    pub fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
    }

    fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.rate
    }
}

/// Why a peer's new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// Over `--ws-peer-connection-rate`: answered with HTTP 429 before the upgrade.
    Rate(u32),
    /// Over `--ws-max-connections-per-peer`: closed with 1013 after the upgrade.
    TooMany(usize),
}

#[derive(Debug, Default)]
pub struct PeerTable {
    limits: PeerLimits,
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

/// One open connection of a peer, given back when dropped.
#[derive(Debug)]
pub struct PeerSlot {
    table: Arc<PeerTable>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = self.table.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(peer) = peers.get_mut(&self.ip) {
            peer.open = peer.open.saturating_sub(1);
        }
    }
}

impl PeerTable {
    pub fn new(limits: PeerLimits) -> Arc<Self> {
        Arc::new(Self { limits, peers: Mutex::new(HashMap::new()) })
    }

    pub fn is_limited(&self) -> bool {
        self.limits != PeerLimits::default()
    }

    /// Charges a new connection attempt of `ip` to its rate (before the upgrade is
    /// answered, so a refused peer costs no websocket).
    pub fn charge_rate(&self, ip: IpAddr) -> Result<(), PeerRefusal> {
        let Some(rate) = self.limits.connections_per_second else { return Ok(()) };
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        Self::prune(&mut peers);
        let peer = peers.entry(ip).or_insert_with(|| Peer { open: 0, bucket: Bucket::new(rate) });
        if peer.bucket.take() {
            Ok(())
        } else {
            Err(PeerRefusal::Rate(rate))
        }
    }

    /// Takes one of `ip`'s connection slots.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<PeerSlot, PeerRefusal> {
        let rate = self.limits.connections_per_second.unwrap_or(u32::MAX);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let peer = peers.entry(ip).or_insert_with(|| Peer { open: 0, bucket: Bucket::new(rate) });
        if let Some(max) = self.limits.max_connections {
            if peer.open >= max {
                return Err(PeerRefusal::TooMany(max));
            }
        }
        peer.open += 1;
        Ok(PeerSlot { table: self.clone(), ip })
    }

    fn prune(peers: &mut HashMap<IpAddr, Peer>) {
        if peers.len() > PRUNE_ABOVE {
            peers.retain(|_, peer| peer.open > 0 || !peer.bucket.is_full());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_concurrency_per_ip() {
        let table = PeerTable::new(PeerLimits { max_connections: Some(2), connections_per_second: Some(3) });
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().expect("ip"), "127.0.0.2".parse().expect("ip"));
        assert_eq!((0..3).map(|_| table.charge_rate(a)).collect::<Vec<_>>(), vec![Ok(()), Ok(()), Ok(())]);
        assert_eq!(table.charge_rate(a), Err(PeerRefusal::Rate(3)));
        assert_eq!(table.charge_rate(b), Ok(()), "another address has its own bucket");
        let first = table.open(a).expect("slot");
        let _second = table.open(a).expect("slot");
        assert_eq!(table.open(a).err(), Some(PeerRefusal::TooMany(2)));
        drop(first);
        assert!(table.open(a).is_ok(), "a closed connection frees its slot");
    }

    #[test]
    fn bucket_refills_over_time() {
        let mut bucket = Bucket::new(1000);
        while bucket.take() {}
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(bucket.take());
    }
}
