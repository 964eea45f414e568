//! A one-slot channel where the newest item wins, for live sources.
//!
//! Written here because std's and crossbeam's bounded channels block or refuse the *new* item
//! when full, while live video must keep the newest frame and hand back the stale one (whose
//! buffer the decoder then reuses).

use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug)]
struct State<T> {
    item: Option<T>,
    sender_alive: bool,
    receiver_alive: bool,
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

/// The sending half of [`latest`].
#[derive(Debug)]
pub(crate) struct LatestSender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half of [`latest`].
#[derive(Debug)]
pub(crate) struct LatestReceiver<T> {
    shared: Arc<Shared<T>>,
}

/// A one-slot channel: `send` never blocks and replaces an item not yet received.
pub(crate) fn latest<T>() -> (LatestSender<T>, LatestReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            item: None,
            sender_alive: true,
            receiver_alive: true,
        }),
        ready: Condvar::new(),
    });
    (
        LatestSender {
            shared: Arc::clone(&shared),
        },
        LatestReceiver { shared },
    )
}

impl<T> LatestSender<T> {
    /// Puts `item` in the slot. `Ok(Some(stale))` hands back the item it replaced, `Err(item)`
    /// means the receiver is gone.
    pub(crate) fn send(&self, item: T) -> Result<Option<T>, T> {
        let Ok(mut state) = self.shared.state.lock() else {
            return Err(item);
        };
        if !state.receiver_alive {
            return Err(item);
        }
        let stale = state.item.replace(item);
        drop(state);
        self.shared.ready.notify_one();
        Ok(stale)
    }
}

impl<T> LatestReceiver<T> {
    /// Waits for an item; `None` once the sender is gone and the slot is empty.
    pub(crate) fn recv(&self) -> Option<T> {
        let mut state = self.shared.state.lock().ok()?;
        loop {
            if let Some(item) = state.item.take() {
                return Some(item);
            }
            if !state.sender_alive {
                return None;
            }
            state = self.shared.ready.wait(state).ok()?;
        }
    }

    /// The waiting item, if there is one, without waiting.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.shared.state.lock().ok()?.item.take()
    }
}

impl<T> Drop for LatestSender<T> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.sender_alive = false;
        }
        self.shared.ready.notify_all();
    }
}

impl<T> Drop for LatestReceiver<T> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.receiver_alive = false;
            state.item = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_item_wins_and_the_stale_one_is_handed_back() {
        let (tx, rx) = latest();
        assert_eq!(tx.send(1), Ok(None));
        assert_eq!(tx.send(2), Ok(Some(1)));
        assert_eq!(rx.recv(), Some(2));
        assert_eq!(tx.send(3), Ok(None));
        drop(tx);
        assert_eq!(
            rx.recv(),
            Some(3),
            "an item sent before closing is still received"
        );
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn sending_to_a_dropped_receiver_fails_and_recv_waits_for_the_sender() {
        let (tx, rx) = latest::<u32>();
        let t = std::thread::spawn(move || rx.recv());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(tx.send(7), Ok(None));
        assert_eq!(t.join().ok().flatten(), Some(7));
        assert_eq!(tx.send(8), Err(8));
    }
}
