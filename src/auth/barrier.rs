//! A change that evicts cached tokens answers only once every server has applied it, so that
//! the very next request is refused whichever instance answers it (PostgreSQL).
//!
//! The committing transaction sends, after its changes, a barrier naming this process and a
//! sequence number. The notifications of one transaction reach each listener together, in
//! order, so a server that answers the barrier (on its listening connection, to a channel of
//! the committer's own) has applied every change before it. After the commit, the committer
//! counts the servers listening now (their listening connections carry a name) and waits until
//! each of them answered, for [`BARRIER_TIMEOUT`] at most; then it logs how many did, and
//! answers anyway: the change is committed.
//!
//! Counting after the commit is the safe side. A server not counted named its connection after
//! the commit, and clears its cache after naming it: whatever it caches from then on was read
//! after the change. A server counted that started listening a moment too late to hear the
//! barrier costs one wait, never a stale answer.
//!
//! A server hears the answers through its own listener. An `authd` command, which runs none,
//! listens for the one change it commits on a connection of its own, and so does a server
//! whose listener is not listening now (starting, or reconnecting): not waiting then would let
//! a change made through it answer before the others applied it. SQLite has one server, and
//! commands beside it are not waited for: it reads their changes within a poll.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Invalidation;
use crate::crypto;
use crate::store::{self, Db, DbErr, Inbox, Notice, Reply, Tx};

/// How long a change waits at most for the servers to confirm it: what a hung or unreachable
/// instance costs each change (the change is committed either way). Confirmations take a few
/// milliseconds; a second is far above that, and short enough for the client waiting.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(1);

const BARRIER: &str = "barrier";
/// Answers go to `authd_token_cache_ack_<process id>`, heard by that process alone.
const ACK_CHANNEL: &str = "authd_token_cache_ack_";
/// Random bytes of a process's id (16 hex digits: a channel name needs few).
const ID_BYTES: usize = 8;

pub struct Barriers {
    id: String,
    next: AtomicU64,
    /// Barriers raised and not yet settled: where their answers' senders go.
    waiting: Mutex<HashMap<u64, mpsc::UnboundedSender<i64>>>,
    /// Whether this process's listener hears its answers now (never, in a command).
    listening: AtomicBool,
}

impl std::fmt::Debug for Barriers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barriers").field("id", &self.id).finish()
    }
}

impl Default for Barriers {
    fn default() -> Self {
        Self::new()
    }
}

impl Barriers {
    pub fn new() -> Self {
        Self {
            id: crypto::random_hex(ID_BYTES),
            next: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            listening: AtomicBool::new(false),
        }
    }

    /// Where this process hears answers to its barriers.
    pub fn ack_channel(&self) -> String {
        format!("{ACK_CHANNEL}{}", self.id)
    }

    /// Whether this server's listener listens (on [`Self::ack_channel`] too) now.
    pub fn listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::SeqCst);
    }

    /// Sends `changes` inside `txn`, then a barrier after them when they evict something.
    /// Commit `txn`, then [`Pending::settle`].
    pub async fn raise(
        &self,
        db: &Db,
        txn: &Tx,
        changes: &[Invalidation],
    ) -> Result<Pending<'_>, DbErr> {
        for change in changes {
            store::notify(txn, Invalidation::CHANNEL, &change.payload()).await?;
        }
        if !store::servers_confirm(db) || !changes.iter().any(Invalidation::evicts) {
            return Ok(Pending::Nothing);
        }
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let answers = match self.listening.load(Ordering::SeqCst) {
            true => {
                let (sender, receiver) = mpsc::unbounded_channel();
                if let Ok(mut waiting) = self.waiting.lock() {
                    waiting.insert(sequence, sender);
                }
                Answers::Listener(Registered {
                    barriers: self,
                    sequence,
                    receiver,
                })
            }
            false => {
                let opened =
                    tokio::time::timeout(BARRIER_TIMEOUT, Inbox::open(db, &self.ack_channel()))
                        .await;
                match opened {
                    Ok(Ok(Some(inbox))) => Answers::Inbox(inbox),
                    Ok(Ok(None)) => return Ok(Pending::Nothing),
                    Ok(Err(err)) => {
                        tracing::warn!(
                            error = %err,
                            "cannot listen for the servers' confirmations; the change will not wait for them"
                        );
                        return Ok(Pending::Nothing);
                    }
                    Err(_) => {
                        tracing::warn!(
                            "cannot listen for the servers' confirmations in time; the change will not wait for them"
                        );
                        return Ok(Pending::Nothing);
                    }
                }
            }
        };
        let barrier = format!("{BARRIER}:{}:{sequence}", self.id);
        store::notify(txn, Invalidation::CHANNEL, &barrier).await?;
        Ok(Pending::Barrier { sequence, answers })
    }

    /// The answer a server sends to a barrier it heard (every change before it applied).
    pub fn answer(payload: &str) -> Option<Reply> {
        let (id, sequence) = payload
            .strip_prefix(BARRIER)?
            .strip_prefix(':')?
            .split_once(':')?;
        // Only what this code sends: anything else could make an invalid channel name, and
        // a failing reply costs the listener its connection.
        let well_formed = id.len() == 2 * ID_BYTES && id.bytes().all(|b| b.is_ascii_hexdigit());
        let sequence: u64 = sequence.parse().ok()?;
        well_formed.then(|| Reply {
            channel: format!("{ACK_CHANNEL}{id}"),
            payload: sequence.to_string(),
        })
    }

    /// An answer to one of this process's barriers, heard by its listener.
    pub fn answered(&self, notice: Notice<'_>) {
        let Ok(sequence) = notice.payload.parse::<u64>() else {
            return;
        };
        if let Ok(waiting) = self.waiting.lock()
            && let Some(sender) = waiting.get(&sequence)
        {
            let _ = sender.send(notice.sender);
        }
    }
}

/// A barrier sent and not yet settled.
pub enum Pending<'a> {
    /// Nothing to wait for.
    Nothing,
    Barrier {
        sequence: u64,
        answers: Answers<'a>,
    },
}

/// Where a barrier's answers arrive.
pub enum Answers<'a> {
    /// This server's listener hands them over.
    Listener(Registered<'a>),
    /// A command's own listening connection.
    Inbox(Inbox),
}

/// A barrier this server's listener routes answers to, until dropped.
pub struct Registered<'a> {
    barriers: &'a Barriers,
    sequence: u64,
    receiver: mpsc::UnboundedReceiver<i64>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.barriers.waiting.lock() {
            waiting.remove(&self.sequence);
        }
    }
}

impl Answers<'_> {
    /// The sender of the next answer to barrier `sequence`; `None` when no more can come.
    async fn next(&mut self, sequence: u64) -> Result<Option<i64>, DbErr> {
        match self {
            Answers::Listener(registered) => Ok(registered.receiver.recv().await),
            Answers::Inbox(inbox) => loop {
                match inbox.next().await? {
                    Some((sender, payload)) if payload == sequence.to_string() => {
                        return Ok(Some(sender));
                    }
                    Some(_) => continue,
                    None => return Ok(None),
                }
            },
        }
    }
}

impl Pending<'_> {
    /// After the commit: waits until every server listening now has answered, for
    /// [`BARRIER_TIMEOUT`] at most.
    pub async fn settle(self, db: &Db) {
        let Pending::Barrier {
            sequence,
            mut answers,
        } = self
        else {
            return;
        };
        let mut servers: Option<usize> = None;
        let mut missing: HashSet<i64> = HashSet::new();
        let waited = tokio::time::timeout(BARRIER_TIMEOUT, async {
            missing = store::cache_listeners(db).await?.into_iter().collect();
            servers = Some(missing.len());
            while !missing.is_empty() {
                match answers.next(sequence).await? {
                    Some(server) => {
                        missing.remove(&server);
                    }
                    None => break,
                }
            }
            Ok::<(), DbErr>(())
        })
        .await;
        if let Answers::Inbox(inbox) = answers {
            inbox.close().await;
        }
        match (waited, servers) {
            (Ok(Ok(())), Some(servers)) if missing.is_empty() => {
                tracing::debug!(servers, "every server applied the change");
            }
            (Ok(Err(err)), _) => tracing::warn!(
                error = %err,
                "cannot tell whether every server applied the change; answering without knowing"
            ),
            (_, Some(servers)) => tracing::warn!(
                confirmed = servers - missing.len(),
                servers,
                waited_ms = BARRIER_TIMEOUT.as_millis() as u64,
                "not every server confirmed the change in time (hung or cut off?); answering anyway"
            ),
            (_, None) => tracing::warn!(
                waited_ms = BARRIER_TIMEOUT.as_millis() as u64,
                "could not count the servers in time; answering without their confirmation"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_barrier_is_answered_on_its_senders_channel() {
        let barriers = Barriers::new();
        let reply = Barriers::answer(&format!("barrier:{}:41", barriers.id)).expect("an answer");
        assert_eq!(reply.channel, barriers.ack_channel());
        assert_eq!(reply.payload, "41");
    }

    #[test]
    fn a_barrier_that_would_name_a_strange_channel_is_not_answered() {
        for payload in [
            "barrier:",
            "barrier:0123456789abcdef",
            "barrier:0123456789abcdef:x",
            "barrier:0123456789abcdeg:1",
            "barrier:0123456789abcdef0:1",
            "barrier:\"; DROP TABLE auth_user; --:1",
            "barrierx:0123456789abcdef:1",
            "user:1",
        ] {
            assert_eq!(Barriers::answer(payload), None, "{payload}");
        }
    }
}
