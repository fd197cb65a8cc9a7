//! Password hashing: Argon2id on a small pool of batch-class threads, away from the async
//! runtime, behind a bounded queue.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use rand::TryRng as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::django;
use super::scheme::{HashClass, Scheme};

/// Argon2id cost. The defaults are OWASP's minimum, which is also the floor settings accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    #[error("cannot make a dummy hash of {scheme}: {reason}")]
    Dummy { scheme: Scheme, reason: String },
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Hashing and verification, run on `threads` dedicated OS threads in the batch scheduling
/// class, away from the async runtime.
///
/// Admission control: a request that will hash first takes a place in a bounded queue
/// ([`PasswordHasher::admit`]), once its body is in memory. It is shed at once, with no wait,
/// when no place is left (`queue_limit`, the hard cap), or when the wait it can expect is
/// longer than `queue_timeout`: a burst that the threads will clear in time is served whole,
/// and only what could not be is refused. The wait is the work ahead of it ÷ threads: each job
/// waiting for a thread or running at the recent time of its own class of hash (a PBKDF2 check
/// at Django's cost takes several Argon2id checks' time), and each place not yet hashing at the
/// dummy's. Each job then waits for a thread at most `queue_timeout`. At most `threads` jobs
/// run; the others wait asynchronously, so no 19 MiB buffers pile up and memory stays bounded.
///
/// The dummy hash is what a login checks when there is no usable hash to check (an unknown
/// name, an unusable or refused hash), so that it costs what a failed login of a real account
/// costs. While accounts imported from Django keep their old hash, that is the most common of
/// those ([`PasswordHasher::follow_legacy`]); otherwise authd's own Argon2id.
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    cost: HashCost,
    /// The dummy in authd's own format, kept for when no legacy hash is left.
    own_dummy: Arc<Dummy>,
    dummy: RwLock<Arc<Dummy>>,
    threads: Arc<Semaphore>,
    thread_count: usize,
    places: Arc<Semaphore>,
    queue_limit: usize,
    queue_timeout: Duration,
    load: Arc<Load>,
    jobs: mpsc::Sender<Job>,
}

/// What a check with no hash of its own verifies.
#[derive(Debug)]
struct Dummy {
    stored: String,
    scheme: Scheme,
    /// More common legacy schemes too costly for a dummy: told once, not at every refresh.
    passed_over: Vec<Scheme>,
}

/// The password a dummy is a hash of: never anyone's, since no account is behind a dummy.
const DUMMY_PASSWORD: &str = "authd dummy password for timing";

/// Per class of hash: a moving average of one job's time on a thread in nanoseconds (0 before
/// the first), the jobs waiting for a thread or running, and the jobs done.
#[derive(Default)]
struct Load {
    average_nanos: [AtomicU64; HashClass::COUNT],
    in_flight: [AtomicU64; HashClass::COUNT],
    done: [AtomicU64; HashClass::COUNT],
}

impl Load {
    fn average(&self, class: HashClass) -> Option<u64> {
        let nanos = self.average_nanos[class.index()].load(Ordering::Relaxed);
        (nanos > 0).then_some(nanos)
    }

    /// Counts one finished job and folds its time into its class's average.
    fn record(&self, class: HashClass, time: Duration) {
        self.fold(class, time);
        self.done[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Folds a time into the class's average (the first sets it); racing updates may lose one
    /// sample, which an average can afford.
    fn fold(&self, class: HashClass, time: Duration) {
        let average = &self.average_nanos[class.index()];
        let old = average.load(Ordering::Relaxed);
        let new = if old == 0 {
            nanos(time)
        } else {
            old - old / HASH_TIME_SMOOTHING + nanos(time) / HASH_TIME_SMOOTHING
        };
        average.store(new.max(1), Ordering::Relaxed);
    }
}

/// A job counted in its class's `in_flight` from submission until it ends or is given up
/// before it reached a thread.
struct InFlight {
    load: Arc<Load>,
    class: HashClass,
}

impl InFlight {
    fn new(load: &Arc<Load>, class: HashClass) -> Self {
        load.in_flight[class.index()].fetch_add(1, Ordering::Relaxed);
        Self {
            load: Arc::clone(load),
            class,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.in_flight[self.class.index()].fetch_sub(1, Ordering::Relaxed);
    }
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
        let own_dummy = Arc::new(Dummy {
            stored: hash_now(&argon2, &mut Memory::new(kept_blocks), DUMMY_PASSWORD)?,
            scheme: Scheme::Argon2id(cost),
            passed_over: Vec::new(),
        });
        let load = Arc::new(Load::default());
        load.fold(HashClass::Argon2id, started.elapsed());
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
            dummy: RwLock::new(Arc::clone(&own_dummy)),
            own_dummy,
            threads: Arc::new(Semaphore::new(threads)),
            thread_count: threads,
            places: Arc::new(Semaphore::new(queue_limit.max(1))),
            queue_limit: queue_limit.max(1),
            queue_timeout,
            load,
            jobs,
        }))
    }

    fn dummy(&self) -> Arc<Dummy> {
        Arc::clone(&self.dummy.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The algorithm and cost of the dummy hash in use: for metrics and tests.
    pub fn dummy_scheme(&self) -> Scheme {
        self.dummy().scheme
    }

    /// How many jobs of this class the threads have finished: for metrics and tests.
    pub fn jobs_done(&self, class: HashClass) -> u64 {
        self.load.done[class.index()].load(Ordering::Relaxed)
    }

    /// Places taken in the queue: requests admitted and not yet finished, for metrics.
    pub fn queue_depth(&self) -> usize {
        self.queue_limit - self.places.available_permits()
    }

    /// Makes the dummy a hash of the most common scheme among `legacy` (a bounded sample of the
    /// stored hashes that are neither authd's own nor unusable), at the same cost with a fresh
    /// salt; authd's own Argon2id when none of them can be verified. A scheme above the dummy
    /// ceilings ([`Scheme::fits_a_dummy`]) is passed over for the next most common, with a
    /// warning: hashes imported with an absurd cost must not make every unknown name cost it.
    /// Returns the scheme in use.
    pub async fn follow_legacy(&self, legacy: &[String]) -> Result<Scheme, HashError> {
        let tally = most_common_first(legacy);
        let chosen = tally
            .iter()
            .map(|(scheme, _)| *scheme)
            .find(|scheme| scheme.fits_a_dummy())
            .unwrap_or(self.own_dummy.scheme);
        let passed_over: Vec<_> = tally
            .iter()
            .take_while(|(scheme, _)| *scheme != chosen)
            .collect();
        let current = self.dummy();
        let passed_over_schemes: Vec<_> = passed_over.iter().map(|(scheme, _)| *scheme).collect();
        if current.scheme == chosen && current.passed_over == passed_over_schemes {
            return Ok(chosen);
        }
        for (scheme, hashes) in &passed_over {
            tracing::warn!(
                legacy = %scheme,
                hashes,
                dummy = %chosen,
                "legacy password hashes too costly for the dummy that unknown names check: \
                 logins to those accounts take longer than a login to no account"
            );
        }
        let stored = if chosen == current.scheme {
            current.stored.clone()
        } else if chosen == self.own_dummy.scheme {
            self.own_dummy.stored.clone()
        } else {
            // A job like any other: it takes a thread, and its time counts in its class's average.
            self.run(chosen.class(), move |_, memory| new_dummy(chosen, memory))
                .await??
        };
        if chosen != current.scheme {
            tracing::info!(
                dummy = %chosen,
                "logins without a usable password hash now check a dummy of this scheme"
            );
        }
        *self.dummy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Dummy {
            stored,
            scheme: chosen,
            passed_over: passed_over_schemes,
        });
        Ok(chosen)
    }

    /// A place in the queue, or `Overloaded` at once when there is none or the wait it can
    /// expect is longer than the queue timeout.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, HashError> {
        let ahead = self.queue_depth();
        if self.expected_wait(ahead) > self.queue_timeout {
            metrics::counter!("authd_admission_refusals_total", "reason" => "expected_wait")
                .increment(1);
            return Err(HashError::Overloaded);
        }
        let place = Arc::clone(&self.places).try_acquire_owned().map_err(|_| {
            metrics::counter!("authd_admission_refusals_total", "reason" => "queue_full")
                .increment(1);
            HashError::Overloaded
        })?;
        Ok(Admission {
            hasher: Arc::clone(self),
            _place: place,
        })
    }

    /// How long a request that finds `ahead` places taken in the queue can expect to wait: the
    /// jobs submitted, each at its class's average, and the places that have not submitted one
    /// yet at the dummy's (a class not seen yet counts at the dummy's too), over the threads.
    /// Jobs that outlive their place (a caller that gave up) still hold a thread, and count.
    fn expected_wait(&self, ahead: usize) -> Duration {
        let load = &self.load;
        let dummy_class = self.dummy().scheme.class();
        let fallback = load
            .average(dummy_class)
            .or_else(|| load.average(HashClass::Argon2id))
            .unwrap_or(0);
        let mut work: u64 = 0;
        let mut submitted: u64 = 0;
        for class in HashClass::ALL {
            let jobs = load.in_flight[class.index()].load(Ordering::Relaxed);
            let one = load.average(class).unwrap_or(fallback);
            work = work.saturating_add(jobs.saturating_mul(one));
            submitted = submitted.saturating_add(jobs);
        }
        let waiting = u64::try_from(ahead)
            .unwrap_or(u64::MAX)
            .saturating_sub(submitted);
        work = work.saturating_add(waiting.saturating_mul(fallback));
        let threads = u64::try_from(self.thread_count).unwrap_or(1);
        Duration::from_nanos(work / threads)
    }

    async fn run<T: Send + 'static>(
        &self,
        class: HashClass,
        work: impl FnOnce(&Argon2<'static>, &mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let in_flight = InFlight::new(&self.load, class);
        let queued = Instant::now();
        let thread = Arc::clone(&self.threads).acquire_owned();
        let thread = tokio::time::timeout(self.queue_timeout, thread)
            .await
            .map_err(|_| {
                metrics::counter!("authd_admission_refusals_total", "reason" => "expected_wait")
                    .increment(1);
                HashError::Overloaded
            })?
            .map_err(|_| HashError::PoolGone)?;
        metrics::histogram!("authd_hash_queue_wait_seconds").record(queued.elapsed().as_secs_f64());
        let (done, result) = oneshot::channel();
        let argon2 = self.argon2.clone();
        let span = tracing::Span::current();
        let load = Arc::clone(&self.load);
        self.jobs
            .send(Box::new(move |memory: &mut Memory| {
                // The thread's permit goes with the job: a caller that gave up (a client that
                // disconnected) cannot make room for more jobs than there are threads.
                let _entered = span.enter();
                let started = Instant::now();
                let output = work(&argon2, memory);
                load.record(class, started.elapsed());
                metrics::counter!("authd_password_hashes_total", "algorithm" => class.name())
                    .increment(1);
                // Done before the caller hears of it: its next request must not find this job
                // still counted (a thread of the batch class may wait to run again).
                drop(in_flight);
                drop(thread);
                let _ = done.send(output);
            }))
            .map_err(|_| HashError::PoolGone)?;
        result.await.map_err(|_| HashError::PoolGone)
    }
}

impl Admission {
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.hasher
            .run(HashClass::Argon2id, move |argon2, memory| {
                hash_now(argon2, memory, &password)
            })
            .await?
    }

    /// Whether `password` matches the stored hash, and whether the hash should be redone in
    /// authd's format at today's cost.
    ///
    /// A hash that can never match (unusable, a refused format, malformed) costs a check of the
    /// dummy hash instead, as in Django: such an account answers no faster than an unknown one.
    pub async fn verify(&self, password: String, stored: String) -> Result<Verified, HashError> {
        let cost = self.hasher.cost;
        let dummy = self.hasher.dummy();
        let class = StoredHash::parse(&stored)
            .class()
            .unwrap_or(dummy.scheme.class());
        self.hasher
            .run(class, move |_, memory| {
                let hash = StoredHash::parse(&stored);
                if hash.never_matches() {
                    StoredHash::parse(&dummy.stored).verify(memory, cost, &password);
                }
                hash.verify(memory, cost, &password)
            })
            .await
    }

    /// A full verification against the dummy hash, so that a login for an unknown account
    /// costs what a failed login of a real one costs.
    pub async fn verify_dummy(&self, password: String) -> Result<(), HashError> {
        self.verify(password, self.hasher.dummy().stored.clone())
            .await
            .map(|_| ())
    }
}

fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

/// The legacy schemes among `stored` with how many hashes have each, most common first (ties
/// in the schemes' order, so the same sample always gives the same dummy). Hashes that never
/// match and authd's own count for nothing: they cost whatever the dummy costs.
fn most_common_first(stored: &[String]) -> Vec<(Scheme, usize)> {
    let mut counts = BTreeMap::new();
    for hash in stored {
        if let Some(scheme) = StoredHash::parse(hash).legacy_scheme() {
            *counts.entry(scheme).or_insert(0) += 1;
        }
    }
    let mut tally: Vec<_> = counts.into_iter().collect();
    tally.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    tally
}

/// A new hash of [`DUMMY_PASSWORD`] in `scheme`, with a fresh salt, computed in the thread's
/// kept memory where it is Argon2.
fn new_dummy(scheme: Scheme, memory: &mut Memory) -> Result<String, HashError> {
    let failed = |reason: &dyn fmt::Display| HashError::Dummy {
        scheme,
        reason: reason.to_string(),
    };
    match scheme {
        Scheme::Argon2id(cost) => {
            let params = cost.params().map_err(|e| failed(&e))?;
            let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            hash_now(&argon2, memory, DUMMY_PASSWORD)
        }
        Scheme::DjangoArgon2 {
            algorithm,
            version,
            memory_kib,
            iterations,
            parallelism,
        } => {
            let params =
                Params::new(memory_kib, iterations, parallelism, None).map_err(|e| failed(&e))?;
            let argon2 = Argon2::new(algorithm, version, params);
            let phc = hash_phc(&argon2, algorithm, version, memory, DUMMY_PASSWORD)?;
            Ok(format!("argon2{phc}"))
        }
        Scheme::Pbkdf2Sha256 { iterations } => Ok(django::new_pbkdf2(
            django::Prf::Sha256,
            iterations,
            DUMMY_PASSWORD,
        )),
        Scheme::Pbkdf2Sha1 { iterations } => Ok(django::new_pbkdf2(
            django::Prf::Sha1,
            iterations,
            DUMMY_PASSWORD,
        )),
        Scheme::BcryptSha256 { cost } => {
            django::new_bcrypt(true, cost, DUMMY_PASSWORD).map_err(|e| failed(&e))
        }
        Scheme::Bcrypt { cost } => {
            django::new_bcrypt(false, cost, DUMMY_PASSWORD).map_err(|e| failed(&e))
        }
        Scheme::Scrypt { log_n, r, p } => {
            django::new_scrypt(log_n, r, p, DUMMY_PASSWORD).map_err(|e| failed(&e))
        }
    }
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
    hash_phc(
        argon2,
        Algorithm::Argon2id,
        Version::V0x13,
        memory,
        password,
    )
}

/// A new PHC string for `password` with `argon2`, which is `algorithm` at `version`.
fn hash_phc(
    argon2: &Argon2<'_>,
    algorithm: Algorithm,
    version: Version,
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
        algorithm: algorithm.ident(),
        version: Some(version.into()),
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
    let Some((algorithm, version, params)) = argon2_of(phc) else {
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

/// The Argon2 a PHC string was made with, if it is one Argon2 can compute, with a salt and a
/// hash (the `phc` crate holds both to Argon2's minimum lengths).
fn argon2_of(phc: &PasswordHash) -> Option<(Algorithm, Version, Params)> {
    phc.salt.as_ref()?;
    phc.hash.as_ref()?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).ok()?;
    let params = Params::try_from(phc).ok()?;
    // No `v=` means Argon2 1.0 (0x10), as the reference implementation and argon2-cffi read
    // it: the hashes of Django 1.10's time. The `argon2` crate's default is 0x13.
    let version = phc
        .version
        .map_or(Ok(Version::V0x10), Version::try_from)
        .ok()?;
    Some((algorithm, version, params))
}

/// A stored password hash in one of the formats the verifier understands. Django's formats
/// (`<algorithm>$…`) are verified so that accounts imported from Django can log in and be
/// rehashed ([`django`]).
#[derive(Debug)]
enum StoredHash<'a> {
    /// A PHC string, authd's own format: `$argon2id$v=19$m=…,t=…,p=…$salt$hash`, that
    /// Argon2 can compute.
    Phc(Box<PasswordHash>),
    /// Django's `argon2$argon2id$v=19$…`: a PHC string without its leading `$`, that Argon2
    /// can compute.
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
        // A hash Argon2 would refuse at once must cost a full check like any that never
        // matches, not answer in microseconds.
        let computable = |phc: &str| {
            PasswordHash::new(phc)
                .ok()
                .filter(|phc| argon2_of(phc).is_some())
                .map(Box::new)
        };
        if stored.starts_with('$') {
            return computable(stored).map_or(StoredHash::Unusable, StoredHash::Phc);
        }
        if let Some(hash) = django::Hash::parse(stored) {
            return StoredHash::Django(hash);
        }
        match stored.split_once('$') {
            Some(("argon2", phc)) => computable(&format!("${phc}"))
                .map_or(StoredHash::Refused("argon2"), StoredHash::DjangoArgon2),
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

    /// The class of a check of this hash; `None` for one that never matches.
    fn class(&self) -> Option<HashClass> {
        match self {
            StoredHash::Phc(_) => Some(HashClass::Argon2id),
            StoredHash::DjangoArgon2(_) => Some(HashClass::DjangoArgon2),
            StoredHash::Django(hash) => Some(hash.scheme().class()),
            StoredHash::Refused(_) | StoredHash::Unusable => None,
        }
    }

    /// The algorithm and cost of a Django hash that can match; `None` for authd's own PHC
    /// strings and for hashes that never match.
    fn legacy_scheme(&self) -> Option<Scheme> {
        match self {
            StoredHash::DjangoArgon2(phc) => {
                let (algorithm, version, params) = argon2_of(phc)?;
                Some(Scheme::DjangoArgon2 {
                    algorithm,
                    version,
                    memory_kib: params.m_cost(),
                    iterations: params.t_cost(),
                    parallelism: params.p_cost(),
                })
            }
            StoredHash::Django(hash) => Some(hash.scheme()),
            StoredHash::Phc(_) | StoredHash::Refused(_) | StoredHash::Unusable => None,
        }
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
        assert_eq!(hasher.expected_wait(0), Duration::ZERO, "no job left");
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
            // Well-formed, but Argon2 or bcrypt would refuse them at once.
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=16,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "argon2$argon2x$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "bcrypt$$2b$03$wHZOTJFpwEno8nSH.lqogefCTkAE2v/uPWJOReceHJebgSopm4JW6",
        ] {
            // With no average, the next job's time is the average.
            hasher.load.average_nanos[HashClass::Argon2id.index()].store(0, Ordering::Relaxed);
            let verified = hasher
                .admit()
                .expect("room")
                .verify("pw".into(), never.into())
                .await
                .expect("verify");
            assert!(!verified.matches, "{never}");
            let took = hasher.load.average(HashClass::Argon2id).unwrap_or(0);
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
        set_average(&hasher, HashClass::Argon2id, Duration::from_millis(20));
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

    fn set_average(hasher: &PasswordHasher, class: HashClass, time: Duration) {
        hasher.load.average_nanos[class.index()].store(nanos(time), Ordering::Relaxed);
    }

    fn set_in_flight(hasher: &PasswordHasher, class: HashClass, jobs: u64) {
        hasher.load.in_flight[class.index()].store(jobs, Ordering::Relaxed);
    }

    fn pbkdf2_sha256(iterations: u32) -> String {
        django::new_pbkdf2(django::Prf::Sha256, iterations, "pw")
    }

    /// Jobs waiting for a thread count at their own class's time, places that have not
    /// submitted a job yet at the dummy's: four PBKDF2 checks five times an Argon2id check's
    /// time leave room for fewer requests than four Argon2id checks would.
    #[tokio::test]
    async fn each_queued_job_counts_at_its_own_class_time() {
        let hasher = PasswordHasher::with_queue(
            HashCost::OWASP_MINIMUM,
            2,
            1000,
            Duration::from_millis(400),
        )
        .expect("pool");
        set_average(&hasher, HashClass::Argon2id, Duration::from_millis(20));
        set_average(&hasher, HashClass::Pbkdf2Sha256, Duration::from_millis(100));
        let mut admitted: Vec<_> = (0..4).map(|_| hasher.admit().expect("room")).collect();
        assert_eq!(hasher.expected_wait(4), Duration::from_millis(40));
        set_in_flight(&hasher, HashClass::Pbkdf2Sha256, 4);
        // 4 × 100 ms ÷ 2 threads.
        assert_eq!(hasher.expected_wait(4), Duration::from_millis(200));
        // Two more places, not hashing yet: at the dummy's class, authd's Argon2id.
        assert_eq!(hasher.expected_wait(6), Duration::from_millis(220));
        // A class with no average yet counts at the dummy's too.
        set_in_flight(&hasher, HashClass::Scrypt, 1);
        assert_eq!(hasher.expected_wait(6), Duration::from_millis(220));
        set_in_flight(&hasher, HashClass::Scrypt, 0);
        while let Ok(place) = hasher.admit() {
            admitted.push(place);
            assert!(admitted.len() <= 1000, "never past the hard cap");
        }
        // (4 × 100 + k × 20) ÷ 2 ≤ 400 while k ≤ 20: 21 more than the four.
        assert_eq!(admitted.len(), 25);
        // Jobs that outlive their place (a caller gave up) still hold the threads.
        admitted.clear();
        assert_eq!(hasher.expected_wait(0), Duration::from_millis(200));
        set_in_flight(&hasher, HashClass::Pbkdf2Sha256, 0);
        assert_eq!(hasher.expected_wait(0), Duration::ZERO);
    }

    /// While the dummy is a legacy scheme, a place not hashing yet counts at that scheme's time:
    /// most such places are logins, of an imported account or of none.
    #[tokio::test]
    async fn places_not_yet_hashing_count_at_the_dummy_class_time() {
        let hasher = PasswordHasher::with_queue(
            HashCost::OWASP_MINIMUM,
            2,
            1000,
            Duration::from_millis(400),
        )
        .expect("pool");
        let legacy = vec![pbkdf2_sha256(1000); 3];
        let scheme = hasher.follow_legacy(&legacy).await.expect("dummy");
        assert_eq!(scheme, Scheme::Pbkdf2Sha256 { iterations: 1000 });
        set_average(&hasher, HashClass::Argon2id, Duration::from_millis(20));
        set_average(&hasher, HashClass::Pbkdf2Sha256, Duration::from_millis(100));
        let mut admitted = Vec::new();
        while let Ok(place) = hasher.admit() {
            admitted.push(place);
            assert!(admitted.len() <= 1000, "never past the hard cap");
        }
        // 8 ahead × 100 ms ÷ 2 threads = 400 ms: the 10th would wait longer than the timeout.
        assert_eq!(admitted.len(), 9);
    }

    /// The dummy is a fresh hash of the most common legacy scheme at its cost; never-matching
    /// and authd's own hashes do not vote; a scheme over the ceilings is passed over; with no
    /// legacy hash left the dummy is authd's own again.
    #[tokio::test]
    async fn the_dummy_follows_the_most_common_legacy_scheme() {
        let hasher = PasswordHasher::new(HashCost::OWASP_MINIMUM, 1).expect("pool");
        let own = Scheme::Argon2id(HashCost::OWASP_MINIMUM);
        assert_eq!(hasher.dummy_scheme(), own);
        let sha1 = django::new_pbkdf2(django::Prf::Sha1, 1000, "pw");
        let mut legacy = vec![
            pbkdf2_sha256(1000),
            sha1.clone(),
            pbkdf2_sha256(1000),
            pbkdf2_sha256(2000),
            hasher.own_dummy.stored.clone(),
            hasher.own_dummy.stored.clone(),
            hasher.own_dummy.stored.clone(),
            "!unusable".to_owned(),
            "!unusable".to_owned(),
            "!unusable".to_owned(),
            "md5$salt$hash".to_owned(),
            "md5$salt$hash".to_owned(),
            "md5$salt$hash".to_owned(),
        ];
        let expected = Scheme::Pbkdf2Sha256 { iterations: 1000 };
        assert_eq!(
            hasher.follow_legacy(&legacy).await.expect("dummy"),
            expected
        );
        let dummy = hasher.dummy();
        assert_eq!(
            StoredHash::parse(&dummy.stored).legacy_scheme(),
            Some(expected)
        );
        assert!(!legacy.contains(&dummy.stored), "a hash of its own");

        // Unchanged, it is kept as it is.
        assert_eq!(
            hasher.follow_legacy(&legacy).await.expect("dummy"),
            expected
        );
        assert!(Arc::ptr_eq(&dummy, &hasher.dummy()));

        // A majority imported at an absurd cost is passed over for the next most common.
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0; 32]);
        let absurd = format!("pbkdf2_sha256$2147483647$salt${key}");
        legacy.extend(vec![absurd.clone(); 5]);
        assert_eq!(
            hasher.follow_legacy(&legacy).await.expect("dummy"),
            expected
        );
        assert_eq!(
            hasher.dummy().passed_over,
            [Scheme::Pbkdf2Sha256 {
                iterations: 2_147_483_647
            }]
        );
        assert_eq!(hasher.dummy().stored, dummy.stored, "not made again");

        legacy.extend(vec![sha1; 4]);
        assert_eq!(
            hasher.follow_legacy(&legacy).await.expect("dummy"),
            Scheme::Pbkdf2Sha1 { iterations: 1000 }
        );

        for none_left in [
            vec![absurd, "!unusable".to_owned(), "md5$salt$hash".to_owned()],
            Vec::new(),
        ] {
            assert_eq!(hasher.follow_legacy(&none_left).await.expect("dummy"), own);
            assert_eq!(hasher.dummy().stored, hasher.own_dummy.stored);
        }
    }

    /// Every dummy is a hash in the format Django writes, of the scheme it was made for, with a
    /// salt of its own.
    #[test]
    fn dummies_are_hashes_of_their_scheme() {
        let mut memory = Memory::new(0);
        for scheme in [
            Scheme::DjangoArgon2 {
                algorithm: Algorithm::Argon2i,
                version: Version::V0x10,
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            Scheme::DjangoArgon2 {
                algorithm: Algorithm::Argon2id,
                version: Version::V0x13,
                memory_kib: 256,
                iterations: 2,
                parallelism: 2,
            },
            Scheme::Pbkdf2Sha256 { iterations: 1000 },
            Scheme::Pbkdf2Sha1 { iterations: 1000 },
            Scheme::BcryptSha256 { cost: 4 },
            Scheme::Bcrypt { cost: 4 },
            Scheme::Scrypt {
                log_n: 4,
                r: 8,
                p: 2,
            },
        ] {
            let stored = new_dummy(scheme, &mut memory).expect("dummy");
            assert_eq!(
                StoredHash::parse(&stored).legacy_scheme(),
                Some(scheme),
                "{stored}"
            );
            assert!(verify_here(DUMMY_PASSWORD, &stored).matches, "{stored}");
            assert!(!verify_here("pw", &stored).matches, "{stored}");
            assert_ne!(new_dummy(scheme, &mut memory).expect("dummy"), stored);
        }
        let own = Scheme::Argon2id(HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        });
        let stored = new_dummy(own, &mut memory).expect("dummy");
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{stored}"
        );
        assert!(StoredHash::parse(&stored).legacy_scheme().is_none());
    }
}
