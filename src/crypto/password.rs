//! Password hashing: Argon2id on a small pool of batch-class threads, away from the async
//! runtime, behind a bounded queue.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use rand::TryRng as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::django;

/// Argon2id cost. The defaults are OWASP's minimum, which is also the floor settings accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashCost {
    pub const OWASP_MINIMUM: HashCost = HashCost {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    fn params(self) -> Result<Params, argon2::Error> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 failed: {0}")]
    Argon2(String),
    #[error("the password hashing pool has stopped")]
    PoolGone,
    /// The queue is full, or a hash thread did not come free in time: shed the request.
    #[error("the password hashing queue is full")]
    Overloaded,
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Hashing and verification, run on `threads` dedicated OS threads in the batch scheduling
/// class, away from the async runtime.
///
/// Admission control: a request that will hash first takes a place in a bounded queue
/// ([`PasswordHasher::admit`]), once its body is in memory. It is shed at once, with no wait,
/// when no place is left (`queue_limit`, the hard cap), or when the wait it can expect (the
/// requests ahead of it × the recent time of one hash ÷ threads) is longer than
/// `queue_timeout`: a burst that the threads will clear in time is served whole, and only
/// what could not be is refused. Each job then waits for a thread at most `queue_timeout`. At
/// most `threads` jobs run; the others wait asynchronously, so no 19 MiB buffers pile up and
/// memory stays bounded.
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    cost: HashCost,
    dummy_hash: String,
    threads: Arc<Semaphore>,
    thread_count: usize,
    places: Arc<Semaphore>,
    queue_limit: usize,
    queue_timeout: Duration,
    /// A moving average of one job's time on a thread, in nanoseconds.
    recent_hash_nanos: Arc<AtomicU64>,
    jobs: mpsc::Sender<Job>,
}

/// The weight of the newest job in the moving average of hash times, as 1 / this.
const HASH_TIME_SMOOTHING: u64 = 8;

/// A place in the hashing queue, held for as long as the request may hash; the only way to
/// hash or verify.
pub struct Admission {
    hasher: Arc<PasswordHasher>,
    _place: OwnedSemaphorePermit,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A pool with the default queue: 64 places per thread, 2 s to wait for a thread.
    pub fn new(cost: HashCost, threads: usize) -> Result<Arc<Self>, HashError> {
        Self::with_queue(cost, threads, 64 * threads.max(1), Duration::from_secs(2))
    }

    pub fn with_queue(
        cost: HashCost,
        threads: usize,
        queue_limit: usize,
        queue_timeout: Duration,
    ) -> Result<Arc<Self>, HashError> {
        let params = cost
            .params()
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        let kept_blocks = params.block_count();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        // Before any request has hashed, the expected wait assumes what this one costs.
        let started = Instant::now();
        let dummy_hash = hash_now(
            &argon2,
            &mut Memory::new(kept_blocks),
            "authd dummy password for timing",
        )?;
        let one_hash = started.elapsed();
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = threads.max(1);
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("authd-hash-{index}"))
                .spawn(move || {
                    lower_thread_priority();
                    let mut memory = Memory::new(kept_blocks);
                    loop {
                        let job = match receiver.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|_| HashError::PoolGone)?;
        }
        Ok(Arc::new(Self {
            argon2,
            cost,
            dummy_hash,
            threads: Arc::new(Semaphore::new(threads)),
            thread_count: threads,
            places: Arc::new(Semaphore::new(queue_limit.max(1))),
            queue_limit: queue_limit.max(1),
            queue_timeout,
            recent_hash_nanos: Arc::new(AtomicU64::new(nanos(one_hash))),
            jobs,
        }))
    }

    /// A place in the queue, or `Overloaded` at once when there is none or the wait it can
    /// expect is longer than the queue timeout.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, HashError> {
        let ahead = self.queue_limit - self.places.available_permits();
        if self.expected_wait(ahead) > self.queue_timeout {
            return Err(HashError::Overloaded);
        }
        let place = Arc::clone(&self.places)
            .try_acquire_owned()
            .map_err(|_| HashError::Overloaded)?;
        Ok(Admission {
            hasher: Arc::clone(self),
            _place: place,
        })
    }

    /// How long a request that finds `ahead` requests in the queue can expect to wait.
    fn expected_wait(&self, ahead: usize) -> Duration {
        let one_hash = self.recent_hash_nanos.load(Ordering::Relaxed);
        let ahead = u64::try_from(ahead).unwrap_or(u64::MAX);
        let threads = u64::try_from(self.thread_count).unwrap_or(1);
        Duration::from_nanos(ahead.saturating_mul(one_hash) / threads)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>, &mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let thread = Arc::clone(&self.threads).acquire_owned();
        let thread = tokio::time::timeout(self.queue_timeout, thread)
            .await
            .map_err(|_| HashError::Overloaded)?
            .map_err(|_| HashError::PoolGone)?;
        let (done, result) = oneshot::channel();
        let argon2 = self.argon2.clone();
        let span = tracing::Span::current();
        let recent = Arc::clone(&self.recent_hash_nanos);
        self.jobs
            .send(Box::new(move |memory: &mut Memory| {
                // The thread's permit goes with the job: a caller that gave up (a client that
                // disconnected) cannot make room for more jobs than there are threads.
                let _thread = thread;
                let _entered = span.enter();
                let started = Instant::now();
                let output = work(&argon2, memory);
                record_hash_time(&recent, started.elapsed());
                let _ = done.send(output);
            }))
            .map_err(|_| HashError::PoolGone)?;
        result.await.map_err(|_| HashError::PoolGone)
    }
}

impl Admission {
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.hasher
            .run(move |argon2, memory| hash_now(argon2, memory, &password))
            .await?
    }

    /// Whether `password` matches the stored hash, and whether the hash should be redone in
    /// authd's format at today's cost.
    ///
    /// A hash that can never match (unusable, a refused format, malformed) costs a check of the
    /// dummy hash instead, as in Django: such an account answers no faster than an unknown one.
    pub async fn verify(&self, password: String, stored: String) -> Result<Verified, HashError> {
        let cost = self.hasher.cost;
        let dummy = self.hasher.dummy_hash.clone();
        self.hasher
            .run(move |_, memory| {
                let hash = StoredHash::parse(&stored);
                if hash.never_matches() {
                    StoredHash::parse(&dummy).verify(memory, cost, &password);
                }
                hash.verify(memory, cost, &password)
            })
            .await
    }

    /// A full verification against a fixed hash, so that a login for an unknown or inactive
    /// account costs what a real one costs.
    pub async fn verify_dummy(&self, password: String) -> Result<(), HashError> {
        self.verify(password, self.hasher.dummy_hash.clone())
            .await
            .map(|_| ())
    }
}

fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

/// Folds one job's time into the moving average; racing updates may lose one sample, which an
/// average can afford.
fn record_hash_time(recent: &AtomicU64, time: Duration) {
    let old = recent.load(Ordering::Relaxed);
    let new = old - old / HASH_TIME_SMOOTHING + nanos(time) / HASH_TIME_SMOOTHING;
    recent.store(new, Ordering::Relaxed);
}

#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub matches: bool,
    pub outdated: bool,
}

impl Verified {
    const NO_MATCH: Verified = Verified {
        matches: false,
        outdated: false,
    };
}

/// A hash thread's Argon2 memory, kept from job to job. Allocating 19 MiB afresh for every hash
/// costs the page faults of zeroed memory each time, and once freed, glibc keeps such blocks in
/// its arenas; kept here, the memory is faulted in once and is all a thread ever holds.
struct Memory {
    blocks: Vec<Block>,
    /// Blocks of today's cost: the most this memory grows to.
    kept: usize,
}

impl Memory {
    fn new(kept: usize) -> Self {
        Self {
            blocks: Vec::new(),
            kept,
        }
    }

    /// `argon2` over `password` and `salt`, into `out`. A stored hash of a larger cost than
    /// today's (before a settings change) gets memory of its own, for that once.
    fn hash_into(
        &mut self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let count = argon2.params().block_count();
        if count > self.kept {
            return argon2.hash_password_into(password, salt, out);
        }
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::new());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut self.blocks[..count])
    }
}

/// A new PHC string for `password` at today's cost, as `argon2::PasswordHasher::hash_password`
/// writes it, computed in the thread's kept memory.
fn hash_now(
    argon2: &Argon2<'static>,
    memory: &mut Memory,
    password: &str,
) -> Result<String, HashError> {
    let error = |e: &dyn fmt::Display| HashError::Argon2(e.to_string());
    let mut random = [0; Salt::RECOMMENDED_LENGTH];
    rand::rngs::SysRng
        .try_fill_bytes(&mut random)
        .map_err(|e| error(&e))?;
    let salt = Salt::new(&random).map_err(|e| error(&e))?;
    let mut output = [0; Params::DEFAULT_OUTPUT_LEN];
    memory
        .hash_into(argon2, password.as_bytes(), &salt, &mut output)
        .map_err(|e| error(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| error(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(&output).map_err(|e| error(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches a PHC hash, as `argon2::PasswordVerifier` decides it (the
/// hash's own algorithm, version and parameters; outputs compared in constant time), computed
/// in the thread's kept memory.
fn matches_phc(memory: &mut Memory, password: &str, phc: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(phc.algorithm.as_str()),
        Params::try_from(phc),
    ) else {
        return false;
    };
    // No `v=` means Argon2 1.0 (0x10), as the reference implementation and argon2-cffi read
    // it: the hashes of Django 1.10's time. The `argon2` crate's default is 0x13.
    let Ok(version) = phc.version.map_or(Ok(Version::V0x10), Version::try_from) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut buffer = [0; Output::MAX_LENGTH];
    let Some(out) = buffer.get_mut(..expected.len()) else {
        return false;
    };
    memory
        .hash_into(&argon2, password.as_bytes(), salt, out)
        .is_ok()
        && Output::new(out).is_ok_and(|computed| computed == *expected)
}

/// A stored password hash in one of the formats the verifier understands. Django's formats
/// (`<algorithm>$…`) are verified so that accounts imported from Django can log in and be
/// rehashed ([`django`]).
#[derive(Debug)]
enum StoredHash<'a> {
    /// A PHC string, authd's own format: `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
    Phc(Box<PasswordHash>),
    /// Django's `argon2$argon2id$v=19$…`: a PHC string without its leading `$`.
    DjangoArgon2(Box<PasswordHash>),
    /// Django's `pbkdf2_sha256$…`, `pbkdf2_sha1$…`, `bcrypt_sha256$…`, `bcrypt$…`, `scrypt$…`.
    Django(django::Hash<'a>),
    /// Another Django algorithm (`md5$…`, `sha1$…`, `crypt$…`), too weak to trust, or one of
    /// the above malformed: never matches.
    Refused(&'a str),
    /// Django's unusable password (`!…`), or text in no known format: never matches.
    Unusable,
}

impl<'a> StoredHash<'a> {
    fn parse(stored: &'a str) -> Self {
        if stored.starts_with('$') {
            return PasswordHash::new(stored)
                .map_or(StoredHash::Unusable, |phc| StoredHash::Phc(Box::new(phc)));
        }
        if let Some(hash) = django::Hash::parse(stored) {
            return StoredHash::Django(hash);
        }
        match stored.split_once('$') {
            Some(("argon2", phc)) => PasswordHash::new(&format!("${phc}"))
                .map_or(StoredHash::Refused("argon2"), |phc| {
                    StoredHash::DjangoArgon2(Box::new(phc))
                }),
            Some((algorithm, _))
                if !algorithm.is_empty()
                    && algorithm
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                StoredHash::Refused(algorithm)
            }
            _ => StoredHash::Unusable,
        }
    }

    fn never_matches(&self) -> bool {
        matches!(self, StoredHash::Refused(_) | StoredHash::Unusable)
    }

    fn verify(&self, memory: &mut Memory, cost: HashCost, password: &str) -> Verified {
        let mut check = |phc: &PasswordHash| matches_phc(memory, password, phc);
        match self {
            StoredHash::Phc(phc) => Verified {
                matches: check(phc),
                outdated: phc.algorithm != argon2::ARGON2ID_IDENT
                    || Params::try_from(phc.as_ref()).map_or(true, |p| {
                        (p.m_cost(), p.t_cost(), p.p_cost())
                            != (cost.memory_kib, cost.iterations, cost.parallelism)
                    }),
            },
            StoredHash::DjangoArgon2(phc) => Verified {
                matches: check(phc),
                outdated: true,
            },
            StoredHash::Django(hash) => Verified {
                matches: hash.matches(password),
                outdated: true,
            },
            StoredHash::Refused(algorithm) => {
                tracing::warn!(
                    algorithm,
                    "a password hash in a format authd refuses, or malformed: the account \
                     cannot log in with a password until one is set anew"
                );
                Verified::NO_MATCH
            }
            StoredHash::Unusable => Verified::NO_MATCH,
        }
    }
}

/// `verify` on the calling thread, at today's default cost: for known-answer tests.
#[cfg(test)]
pub(super) fn verify_here(password: &str, stored: &str) -> Verified {
    let cost = HashCost::OWASP_MINIMUM;
    let kept = cost.params().map_or(0, |params| params.block_count());
    StoredHash::parse(stored).verify(&mut Memory::new(kept), cost, password)
}

/// Puts the calling thread in Linux's `SCHED_BATCH` class: a CPU-bound thread that never
/// preempts another on wakeup, at the default weight, so under a saturating load of token checks
/// logins still get their share of the CPU instead of starving. Measured against `SCHED_IDLE`
/// (which the pool used before) on the 2-core benchmark machine: during a login storm with
/// saturating guarded load, `SCHED_IDLE` let 21-27 logins/s through and `SCHED_BATCH` 42-48/s,
/// for guarded p99 ratios that overlap (2.4-3.0 and 2.9-4.3); bench/README.md has the figures.
/// Where the class cannot be set, the thread keeps the default.
fn lower_thread_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: the call takes plain values and a pointer to a local, and affects only the
    // calling thread (pid 0).
    let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
    if refused {
        tracing::warn!("hash threads cannot run as SCHED_BATCH; they keep the default policy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(HashCost::OWASP_MINIMUM, 1).expect("pool");
        let phc = hasher
            .admit()
            .expect("room")
            .hash("correct horse".into())
            .await
            .expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let good = hasher
            .admit()
            .expect("room")
            .verify("correct horse".into(), phc.clone())
            .await
            .expect("verify");
        assert!(good.matches && !good.outdated);
        let bad = hasher
            .admit()
            .expect("room")
            .verify("wrong".into(), phc)
            .await
            .expect("verify");
        assert!(!bad.matches);
        let stronger = PasswordHasher::new(
            HashCost {
                memory_kib: 20_000,
                ..HashCost::OWASP_MINIMUM
            },
            1,
        )
        .expect("pool");
        let old = hasher
            .admit()
            .expect("room")
            .hash("pw".into())
            .await
            .expect("hash");
        assert!(
            stronger
                .admit()
                .expect("room")
                .verify("pw".into(), old)
                .await
                .expect("verify")
                .outdated
        );
    }

    /// Hashes made in a thread's kept memory are argon2's own, both ways; a stored hash of a
    /// larger cost than today's verifies in memory of its own, and the kept memory stays small.
    #[test]
    fn kept_memory_hashes_are_argon2s_own() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let params = HashCost::OWASP_MINIMUM.params().expect("params");
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut memory = Memory::new(argon2.params().block_count());
        let ours = hash_now(&argon2, &mut memory, "correct horse").expect("hash");
        assert!(
            argon2
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        assert!(argon2.verify_password(b"wrong", ours.as_str()).is_err());

        let theirs = argon2
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        let theirs = PasswordHash::new(&theirs).expect("PHC");
        assert!(matches_phc(&mut memory, "correct horse", &theirs));
        assert!(!matches_phc(&mut memory, "wrong", &theirs));

        let larger = Params::new(40_000, 1, 1, None).expect("params");
        let stronger = Argon2::new(Algorithm::Argon2id, Version::V0x13, larger)
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        let stronger = PasswordHash::new(&stronger).expect("PHC");
        assert!(matches_phc(&mut memory, "correct horse", &stronger));
        assert_eq!(memory.blocks.len(), memory.kept);
    }

    #[tokio::test]
    async fn django_formats_are_recognised() {
        let hasher = PasswordHasher::new(HashCost::OWASP_MINIMUM, 1).expect("pool");
        let phc = hasher
            .admit()
            .expect("room")
            .hash("correct horse".into())
            .await
            .expect("hash");
        let django = format!("argon2{phc}");
        let verified = hasher
            .admit()
            .expect("room")
            .verify("correct horse".into(), django.clone())
            .await
            .expect("verify");
        assert!(
            verified.matches && verified.outdated,
            "verified, then rehashed in authd's format"
        );
        assert!(
            !hasher
                .admit()
                .expect("room")
                .verify("wrong".into(), django)
                .await
                .expect("verify")
                .matches
        );
        for never in [
            "!unusablepasswordxyz",
            "pbkdf2_sha256$1000000$salt$hash",
            "",
            "plain text",
            "$argon2id$broken",
        ] {
            let verified = hasher
                .admit()
                .expect("room")
                .verify(never.into(), never.into())
                .await
                .expect("verify");
            assert!(!verified.matches, "{never}");
        }
    }

    /// A stored hash that can never match (unusable, a refused format, malformed) costs a full
    /// check of the dummy hash, as in Django: otherwise such an account would answer faster than
    /// an unknown one, and tell that it exists. A check of it takes at least 2 ms (Argon2 over
    /// 19 MiB takes 20 ms and more), where parsing alone takes microseconds.
    #[tokio::test]
    async fn a_hash_that_never_matches_costs_a_full_check() {
        let hasher = PasswordHasher::new(HashCost::OWASP_MINIMUM, 1).expect("pool");
        for never in [
            "!unusablepasswordxyz",
            "md5$salt$hash",
            "",
            "$argon2id$broken",
        ] {
            hasher.recent_hash_nanos.store(0, Ordering::Relaxed);
            let verified = hasher
                .admit()
                .expect("room")
                .verify("pw".into(), never.into())
                .await
                .expect("verify");
            assert!(!verified.matches, "{never}");
            let took = hasher.recent_hash_nanos.load(Ordering::Relaxed) * HASH_TIME_SMOOTHING;
            assert!(
                Duration::from_nanos(took) >= Duration::from_millis(2),
                "{never}: {took} ns"
            );
        }
    }

    /// Below the hard cap, a request is shed only when the wait it can expect is longer than the
    /// queue timeout: with one hash taking ~t and two threads, the queue admits about
    /// 2 × timeout ÷ t requests at once.
    #[tokio::test]
    async fn admission_sheds_only_what_the_threads_cannot_clear_in_time() {
        let hasher = PasswordHasher::with_queue(
            HashCost::OWASP_MINIMUM,
            2,
            1000,
            Duration::from_millis(400),
        )
        .expect("pool");
        hasher
            .recent_hash_nanos
            .store(nanos(Duration::from_millis(20)), Ordering::Relaxed);
        let mut admitted = Vec::new();
        while let Ok(place) = hasher.admit() {
            admitted.push(place);
            assert!(admitted.len() <= 1000, "never past the hard cap");
        }
        // 40 ahead × 20 ms ÷ 2 threads = 400 ms: the 41st would wait longer than the timeout.
        assert_eq!(admitted.len(), 41);
        admitted.truncate(10);
        assert!(
            hasher.admit().is_ok(),
            "room again once the queue is shorter"
        );
        let capped =
            PasswordHasher::with_queue(HashCost::OWASP_MINIMUM, 2, 3, Duration::from_secs(60))
                .expect("pool");
        let places: Vec<_> = (0..3).map(|_| capped.admit().expect("room")).collect();
        assert!(
            matches!(capped.admit(), Err(HashError::Overloaded)),
            "{places:?}"
        );
    }

    /// A caller that gives up (its client disconnected) while its job runs must not free the
    /// thread for another job: otherwise abandoned jobs pile up behind the queue's back.
    #[tokio::test]
    async fn an_abandoned_job_keeps_its_thread_until_it_ends() {
        let hasher = PasswordHasher::new(HashCost::OWASP_MINIMUM, 1).expect("pool");
        let hashing = hasher.admit().expect("room");
        let stored = hashing.hash("pw".into()).await.expect("hash");
        let verify = hashing.verify("pw".into(), stored);
        // Long enough to hand the job to the thread, far shorter than one verification.
        let abandoned = tokio::time::timeout(Duration::from_millis(3), verify).await;
        assert!(abandoned.is_err(), "the verification is still running");
        assert_eq!(hasher.threads.available_permits(), 0);
    }
}
