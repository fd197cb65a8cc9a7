//! Secrets: opaque API tokens (generated here, stored only as SHA-256 digests) and Argon2id
//! password hashing on a small pool of low-priority threads, away from the async runtime.

use std::fmt;
use std::sync::{Arc, Mutex, mpsc};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng as _, TryRng as _};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, oneshot};

/// Lets secret scanners recognise a leaked authd token.
pub const TOKEN_PREFIX: &str = "authd_";
const TOKEN_BYTES: usize = 32;

/// A freshly minted token. Only its digest is persisted; `Debug` never shows the secret.
pub struct NewToken {
    pub secret: String,
    pub digest: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// 256 bits from the OS CSPRNG, base64url: `authd_` followed by 43 characters.
pub fn generate_token() -> Result<NewToken, rand::rngs::SysError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes)?;
    let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = token_digest(&secret);
    Ok(NewToken { secret, digest })
}

/// A random identifier (not a secret): `bytes` random bytes in hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// A single-use link secret for emails: 256 bits, base64url, with its digest.
pub fn generate_link_token() -> Result<NewToken, rand::rngs::SysError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes)?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let digest = token_digest(&secret);
    Ok(NewToken { secret, digest })
}

/// Lowercase hex SHA-256. A fast hash is right for a 256-bit random secret.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

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
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashing and verification, run on `threads` dedicated OS threads at a lower scheduling
/// priority, so a storm of logins cannot take the CPU from token checks. At most `threads`
/// jobs are in flight; the rest wait asynchronously (no 19 MiB buffers queue up).
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    cost: HashCost,
    dummy_hash: String,
    permits: Semaphore,
    jobs: mpsc::Sender<Job>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(cost: HashCost, threads: usize) -> Result<Arc<Self>, HashError> {
        let params = cost
            .params()
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash_now(&argon2, "authd dummy password for timing")?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = threads.max(1);
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("authd-hash-{index}"))
                .spawn(move || {
                    lower_thread_priority();
                    loop {
                        let job = match receiver.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
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
            permits: Semaphore::new(threads),
            jobs,
        }))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::PoolGone)?;
        let (done, result) = oneshot::channel();
        let argon2 = self.argon2.clone();
        let span = tracing::Span::current();
        self.jobs
            .send(Box::new(move || {
                let _entered = span.enter();
                let _ = done.send(work(&argon2));
            }))
            .map_err(|_| HashError::PoolGone)?;
        result.await.map_err(|_| HashError::PoolGone)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |argon2| hash_now(argon2, &password)).await?
    }

    /// Whether `password` matches `phc`, and whether the hash should be redone at today's cost.
    pub async fn verify(&self, password: String, phc: String) -> Result<Verified, HashError> {
        let cost = self.cost;
        self.run(move |argon2| {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Verified {
                    matches: false,
                    outdated: false,
                };
            };
            let matches = argon2.verify_password(password.as_bytes(), &parsed).is_ok();
            let outdated = Params::try_from(&parsed)
                .map(|p| {
                    (p.m_cost(), p.t_cost(), p.p_cost())
                        != (cost.memory_kib, cost.iterations, cost.parallelism)
                })
                .unwrap_or(true)
                || parsed.algorithm != argon2::ARGON2ID_IDENT;
            Verified { matches, outdated }
        })
        .await
    }

    /// A full verification against a fixed hash, so that a login for an unknown or inactive
    /// account costs what a real one costs.
    pub async fn verify_dummy(&self, password: String) -> Result<(), HashError> {
        self.verify(password, self.dummy_hash.clone())
            .await
            .map(|_| ())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub matches: bool,
    pub outdated: bool,
}

fn hash_now(argon2: &Argon2<'static>, password: &str) -> Result<String, HashError> {
    argon2
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Puts the calling thread in Linux's `SCHED_IDLE` class: it runs on CPU time nothing else
/// wants, so hashing never delays a token check, and it still gets all of an idle core.
/// Where that is refused, the lowest nice value is the fallback; failing both, the default.
fn lower_thread_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: both calls take plain values (and a pointer to a local) and affect only the
    // calling thread (pid 0).
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_prefixed_and_distinct() {
        let a = generate_token().expect("os rng");
        let b = generate_token().expect("os rng");
        assert!(a.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.digest, token_digest(&a.secret));
        assert_ne!(a.digest, a.secret);
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(HashCost::OWASP_MINIMUM, 1).expect("pool");
        let phc = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let good = hasher
            .verify("correct horse".into(), phc.clone())
            .await
            .expect("verify");
        assert!(good.matches && !good.outdated);
        let bad = hasher.verify("wrong".into(), phc).await.expect("verify");
        assert!(!bad.matches);
        let stronger = PasswordHasher::new(
            HashCost {
                memory_kib: 20_000,
                ..HashCost::OWASP_MINIMUM
            },
            1,
        )
        .expect("pool");
        let old = hasher.hash("pw".into()).await.expect("hash");
        assert!(
            stronger
                .verify("pw".into(), old)
                .await
                .expect("verify")
                .outdated
        );
    }
}
