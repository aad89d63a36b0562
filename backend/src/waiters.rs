//! Deferred responses: handlers waiting for the outcome of a command they
//! published, keyed by subject (booking id, or event id for event commands).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use boxoffice_platform::views::Reply;
use tokio::sync::oneshot;
use uuid::Uuid;

type Slots = HashMap<Uuid, Vec<(u64, oneshot::Sender<Reply>)>>;

/// Every handler of this instance that waits for an outcome.
#[derive(Default)]
pub struct Waiters {
    slots: Mutex<Slots>,
    next: std::sync::atomic::AtomicU64,
}

/// One waiting handler; dropping it (e.g. on timeout) unregisters it.
pub struct Waiter {
    waiters: Arc<Waiters>,
    subject: Uuid,
    id: u64,
    rx: oneshot::Receiver<Reply>,
}

impl Waiters {
    /// Registers a wait for `subject`; call before publishing the command, so
    /// that no reply can arrive unseen.
    pub fn register(self: &Arc<Self>, subject: Uuid) -> Waiter {
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.slots
            .lock()
            .expect("waiters lock")
            .entry(subject)
            .or_default()
            .push((id, tx));
        Waiter {
            waiters: self.clone(),
            subject,
            id,
            rx,
        }
    }

    /// Hands a reply to everybody waiting for its subject.
    pub fn deliver(&self, reply: Reply) {
        let waiting = self
            .slots
            .lock()
            .expect("waiters lock")
            .remove(&reply.subject);
        for (_, tx) in waiting.into_iter().flatten() {
            let _ = tx.send(reply.clone());
        }
    }

    /// How many handlers wait right now.
    pub fn in_flight(&self) -> usize {
        self.slots
            .lock()
            .expect("waiters lock")
            .values()
            .map(Vec::len)
            .sum()
    }
}

impl Waiter {
    /// The reply, or `None` when `deadline` passes first.
    pub async fn wait(mut self, deadline: std::time::Duration) -> Option<Reply> {
        tokio::time::timeout(deadline, &mut self.rx)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut slots = self.waiters.slots.lock().expect("waiters lock");
        if let Some(list) = slots.get_mut(&self.subject) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                slots.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reply(subject: Uuid) -> Reply {
        Reply {
            subject,
            rejection: None,
            booking: None,
            event: None,
            trace: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_reply_reaches_every_waiter_of_its_subject_only() {
        let w = Arc::new(Waiters::default());
        let a1 = w.register(Uuid::from_u128(1));
        let a2 = w.register(Uuid::from_u128(1));
        let b = w.register(Uuid::from_u128(2));
        w.deliver(reply(Uuid::from_u128(1)));
        assert!(a1.wait(Duration::from_millis(50)).await.is_some());
        assert!(a2.wait(Duration::from_millis(50)).await.is_some());
        assert!(b.wait(Duration::from_millis(20)).await.is_none());
        assert_eq!(w.in_flight(), 0, "timed-out waiters unregister");
    }
}
