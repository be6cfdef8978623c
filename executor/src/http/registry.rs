//! Per-connection bookkeeping of `http/request` calls: how many are in flight (bounded),
//! which streaming request ids are active (unique while streaming), and the cancellation
//! that ends them all when the connection closes. A resumed session does not inherit
//! them: they belong to the connection that sent them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::HttpError;
use crate::sync::lock;

/// `http/request` calls one connection may have in flight, streamed bodies included. An
/// MCP client keeps one or two open (a GET event stream and a POST); this leaves room
/// for bursts while bounding sockets and buffers per connection.
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 64;

#[derive(Default)]
struct ConnectionState {
    in_flight: usize,
    streams: HashSet<String>,
    cancel: CancellationToken,
}

#[derive(Default)]
pub struct Registry {
    connections: Mutex<HashMap<u64, ConnectionState>>,
}

impl Registry {
    /// A connection starts; only open connections can start requests.
    pub fn open(&self, connection: u64) {
        lock(&self.connections).entry(connection).or_default();
    }

    /// A connection ended: every request it has in flight is cancelled, which closes its
    /// HTTP connections or returns them to the pool.
    pub fn close(&self, connection: u64) {
        if let Some(state) = lock(&self.connections).remove(&connection) {
            state.cancel.cancel();
        }
    }

    /// Registers a request of `connection`; a streaming one reserves `request_id` until
    /// its ticket is dropped (after its last delta).
    pub fn begin(self: &Arc<Self>, connection: u64, request_id: &str, streaming: bool) -> Result<Ticket, HttpError> {
        let mut connections = lock(&self.connections);
        let state = connections.get_mut(&connection).ok_or(HttpError::ConnectionClosed)?;
        if streaming && state.streams.contains(request_id) {
            return Err(HttpError::StreamActive(request_id.to_owned()));
        }
        if state.in_flight >= MAX_IN_FLIGHT_PER_CONNECTION {
            return Err(HttpError::TooMany(MAX_IN_FLIGHT_PER_CONNECTION));
        }
        state.in_flight += 1;
        if streaming {
            state.streams.insert(request_id.to_owned());
        }
        Ok(Ticket { registry: self.clone(), connection, request_id: request_id.to_owned(), streaming, cancel: state.cancel.clone() })
    }

    #[cfg(test)]
    fn in_flight(&self, connection: u64) -> Option<usize> {
        lock(&self.connections).get(&connection).map(|s| s.in_flight)
    }
}

/// One request in flight; dropping it releases its slot and its request id.
pub struct Ticket {
    registry: Arc<Registry>,
    connection: u64,
    request_id: String,
    streaming: bool,
    cancel: CancellationToken,
}

impl Ticket {
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Completes when the connection closes.
    pub fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut connections = lock(&self.registry.connections);
        if let Some(state) = connections.get_mut(&self.connection) {
            state.in_flight = state.in_flight.saturating_sub(1);
            if self.streaming {
                state.streams.remove(&self.request_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_unique_while_active_and_slots_are_bounded() {
        let registry = Arc::new(Registry::default());
        assert!(matches!(registry.begin(1, "r", true), Err(HttpError::ConnectionClosed)));
        registry.open(1);
        registry.open(2);
        let first = registry.begin(1, "r", true).ok();
        assert!(first.is_some());
        let again = registry.begin(1, "r", true).err().map(|e| e.to_string());
        assert_eq!(again.as_deref(), Some("http/request streamResponse requestId `r` is already active"));
        assert!(registry.begin(2, "r", true).is_ok(), "ids are per connection");
        assert!(registry.begin(1, "r", false).is_ok(), "a buffered request does not stream");
        drop(first);
        assert!(registry.begin(1, "r", true).is_ok(), "free again once its stream ended");
        assert_eq!(registry.in_flight(1), Some(0));
        let held: Vec<_> = (0..MAX_IN_FLIGHT_PER_CONNECTION).filter_map(|i| registry.begin(1, &i.to_string(), false).ok()).collect();
        assert_eq!(held.len(), MAX_IN_FLIGHT_PER_CONNECTION);
        assert!(matches!(registry.begin(1, "x", false), Err(HttpError::TooMany(_))));
        drop(held);
        assert_eq!(registry.in_flight(1), Some(0));
    }

    #[test]
    fn closing_a_connection_cancels_its_tickets() {
        let registry = Arc::new(Registry::default());
        registry.open(7);
        let ticket = registry.begin(7, "s", true).ok();
        let cancelled = ticket.as_ref().map(Ticket::cancelled);
        registry.close(7);
        let done = cancelled.map(|c| c.now_or_never().is_some());
        assert_eq!(done, Some(true));
        assert!(matches!(registry.begin(7, "t", false), Err(HttpError::ConnectionClosed)));
        drop(ticket);
    }

    use futures_util::FutureExt as _;
}
