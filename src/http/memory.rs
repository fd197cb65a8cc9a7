//! The memory request bodies may hold at once (`AUTHD_BODY_MEMORY_BYTES`): bodies being read,
//! or read and waiting for a hash thread, count against it until their request ends. A body of
//! at most [`RESERVE_BYTES`] never waits for it (logins, sign-ups and every other Djoser body
//! are far smaller), so large bodies cannot starve them; and one client holds at most an eighth
//! of it, so a client that sends 1.6 MB and withholds the last byte, many times over, holds
//! little. A body that does not fit waits for room until its body deadline.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::meter;

/// Bodies up to this size are never counted: the reserve every small request can rely on.
pub const RESERVE_BYTES: usize = 64 * 1024;

/// The share of the budget one client may hold: `budget / SHARE_DIVISOR`.
const SHARE_DIVISOR: usize = 8;

/// Room is taken in steps of this many bytes, so a chunked body does not ask at every chunk.
const STEP_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct BodyMemory {
    total: usize,
    share: usize,
    usage: Mutex<Usage>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct Usage {
    in_use: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// No room came free before the body's deadline.
#[derive(Debug, thiserror::Error)]
#[error("no memory for the request body")]
pub struct NoRoom;

/// One body's room in the budget, given back when dropped.
#[derive(Debug)]
pub struct Room {
    memory: Arc<BodyMemory>,
    client: IpAddr,
    bytes: usize,
}

impl BodyMemory {
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            share: total / SHARE_DIVISOR,
            usage: Mutex::default(),
            freed: Notify::new(),
        })
    }

    /// An empty room for a body from `client` (its host: IPv6 by /64).
    pub fn room(self: &Arc<Self>, client: IpAddr) -> Room {
        Room {
            memory: Arc::clone(self),
            client,
            bytes: 0,
        }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Grows `room` by `more` bytes if the budget and the client's share allow it.
    fn try_grow(&self, room: &mut Room, more: usize) -> bool {
        let mut usage = self.usage();
        let held = usage.by_client.get(&room.client).copied().unwrap_or(0);
        if usage.in_use + more > self.total || held + more > self.share {
            return false;
        }
        usage.in_use += more;
        metrics::gauge!(meter::BODY_BUDGET_IN_USE).set(usage.in_use as f64);
        *usage.by_client.entry(room.client).or_default() += more;
        room.bytes += more;
        true
    }

    fn release(&self, client: IpAddr, bytes: usize) {
        if bytes == 0 {
            return;
        }
        {
            let mut usage = self.usage();
            usage.in_use -= bytes;
            metrics::gauge!(meter::BODY_BUDGET_IN_USE).set(usage.in_use as f64);
            if let Some(held) = usage.by_client.get_mut(&client) {
                *held -= bytes;
                if *held == 0 {
                    usage.by_client.remove(&client);
                }
            }
        }
        self.freed.notify_waiters();
    }
}

impl Room {
    /// Makes the room hold a body of `size` bytes, waiting for others to give room back until
    /// `deadline`. Bodies within the reserve need none.
    pub async fn fit(&mut self, size: usize, deadline: Instant) -> Result<(), NoRoom> {
        if size <= RESERVE_BYTES || size <= self.bytes {
            return Ok(());
        }
        let more = size.div_ceil(STEP_BYTES) * STEP_BYTES - self.bytes;
        let memory = Arc::clone(&self.memory);
        loop {
            let freed = memory.freed.notified();
            tokio::pin!(freed);
            // Registered before trying, so a release between the try and the wait is not missed.
            freed.as_mut().enable();
            if memory.try_grow(self, more) {
                return Ok(());
            }
            tokio::select! {
                () = freed => {}
                () = tokio::time::sleep_until(deadline) => return Err(NoRoom),
            }
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        self.memory.release(self.client, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn client(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    #[tokio::test]
    async fn small_bodies_never_count_and_one_client_holds_an_eighth() {
        let memory = BodyMemory::new(64 * MIB);
        let mut rooms = Vec::new();
        for _ in 0..1000 {
            let mut room = memory.room(client(1));
            room.fit(RESERVE_BYTES, soon()).await.expect("the reserve");
            rooms.push(room);
        }
        let mut large = Vec::new();
        for _ in 0..4 {
            let mut room = memory.room(client(1));
            room.fit(2 * MIB, soon()).await.expect("within the share");
            large.push(room);
        }
        let mut over = memory.room(client(1));
        assert!(
            over.fit(2 * MIB, soon()).await.is_err(),
            "8 MiB is the share"
        );
        let mut other = memory.room(client(2));
        other
            .fit(2 * MIB, soon())
            .await
            .expect("another client's share");
        large.pop();
        over.fit(2 * MIB, soon()).await.expect("room given back");
    }

    #[tokio::test]
    async fn a_waiting_body_gets_room_as_soon_as_one_is_given_back() {
        let memory = BodyMemory::new(16 * MIB);
        let mut first = memory.room(client(1));
        first.fit(2 * MIB, soon()).await.expect("the share");
        let mut second = memory.room(client(1));
        let waiting = second.fit(MIB, Instant::now() + Duration::from_secs(5));
        let release = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(first);
        };
        let (fitted, ()) = tokio::join!(waiting, release);
        fitted.expect("room once the first body was done");
    }

    #[tokio::test]
    async fn a_chunked_body_grows_its_room_in_steps() {
        let memory = BodyMemory::new(64 * MIB);
        let mut room = memory.room(client(1));
        room.fit(RESERVE_BYTES + 1, soon()).await.expect("room");
        assert_eq!(room.bytes, 2 * STEP_BYTES);
        room.fit(RESERVE_BYTES + 2, soon())
            .await
            .expect("already there");
        assert_eq!(room.bytes, 2 * STEP_BYTES);
        drop(room);
        assert_eq!(memory.usage().in_use, 0);
    }
}
