//! A bound on the connections a local server (control socket, metrics) holds at once, so
//! a flood of connections cannot exhaust the daemon's file descriptors.
//!
//! Each connection takes a slot. When all are taken, the oldest connection still waiting
//! for its request gives its slot up (it is closed): idle flooders make room for a
//! client that speaks at once, such as `lb-daemon status`. When every slot serves a
//! request (a reload, say), the new connection is closed at once.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    /// Connections that have not sent their request yet, oldest first.
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<()>>>>,
    max: usize,
}

/// One admitted connection's slot, held until it is dropped.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    evicted: oneshot::Receiver<()>,
}

impl Admission {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            waiting: Arc::new(Mutex::new(VecDeque::new())),
            max,
        }
    }

    /// A slot for a new connection: a free one, else the slot of the oldest connection
    /// still waiting for its request; `None` when every slot serves a request.
    pub async fn admit(&self) -> Option<Admitted> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !self.evict_oldest_waiting() {
                    return None;
                }
                // The evicted connection's task drops its slot as soon as it runs.
                tokio::time::timeout(Duration::from_secs(1), self.slots.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let (tx, evicted) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.len() > 2 * self.max {
            waiting.retain(|w| !w.is_closed());
        }
        waiting.push_back(tx);
        Some(Admitted {
            _slot: slot,
            evicted,
        })
    }

    fn evict_oldest_waiting(&self) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(oldest) = waiting.pop_front() {
            // Fails when that connection has already read its request (or is gone).
            if oldest.send(()).is_ok() {
                return true;
            }
        }
        false
    }
}

impl Admitted {
    /// Runs `read` (the request) for at most `timeout`; `None` when it took longer or
    /// the slot was given to a newer connection. Afterwards the connection is no longer
    /// one that waits, and keeps its slot until dropped.
    pub async fn request<F: Future>(&mut self, timeout: Duration, read: F) -> Option<F::Output> {
        let outcome = tokio::select! {
            read = tokio::time::timeout(timeout, read) => read.ok(),
            _ = &mut self.evicted => None,
        };
        self.evicted.close();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_waiting_connection_makes_room() {
        let admission = Admission::new(2);
        let mut first = admission.admit().await.unwrap();
        let mut second = admission.admit().await.unwrap();
        // The second has its request: only the first can be evicted.
        assert_eq!(
            second.request(Duration::from_secs(1), async { 7 }).await,
            Some(7)
        );
        let third = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await.is_some() }
        });
        let pending = std::future::pending::<()>();
        assert_eq!(first.request(Duration::from_secs(5), pending).await, None);
        drop(first);
        assert!(third.await.unwrap());
        // Both slots now serve or wait; the one waiting (third) was dropped with its
        // task, so a fourth gets its slot back.
        assert!(admission.admit().await.is_some());
    }

    #[tokio::test]
    async fn a_full_house_of_requests_refuses_the_newcomer() {
        let admission = Admission::new(1);
        let mut busy = admission.admit().await.unwrap();
        busy.request(Duration::from_secs(1), async {}).await;
        assert!(admission.admit().await.is_none());
        drop(busy);
        assert!(admission.admit().await.is_some());
    }
}
