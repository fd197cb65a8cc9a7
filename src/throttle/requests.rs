//! DRF's request-rate throttles, `AnonRateThrottle` and `UserRateThrottle`, with DRF's
//! semantics: a log of the requests each key made within the rate's period; a request is
//! admitted while fewer than the rate's count are logged, and only admitted requests are
//! logged. Refused, it waits until the oldest logged request that keeps it out leaves the
//! period. Each throttle is checked on its own, as DRF does: one that admits logs the request
//! even when the other refuses it.
//!
//! Not the GCRA of crates such as `governor`: its admissions and waits differ from DRF's, and
//! the rates, bodies and `Retry-After` values here are DRF's contract.
//!
//! The logs live in this process's memory, or in Redis, shared by every instance. Redis is an
//! aid, not a dependency: when it does not answer within 100 ms, requests go on unthrottled,
//! Redis is left alone for 5 s, and the log says so once per outage.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use super::rate::Rate;

/// How long a Redis call may take before the request goes on without it.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// How long making a connection may take; it is made beside the requests, not in their way.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis is left alone after it failed.
const REDIS_BACKOFF: Duration = Duration::from_secs(5);
/// The most keys kept in memory: an attacker with many addresses evicts the least recently
/// used logs instead of growing the process.
const MEMORY_KEYS: u64 = 200_000;

/// Who a request counts as.
#[derive(Debug, Clone, Copy)]
pub enum Requester<'a> {
    /// Keyed by the client's throttle key (its address, or its IPv6 /64).
    Anonymous {
        client: &'a str,
    },
    User {
        id: i64,
    },
}

pub struct RequestThrottle {
    anon: Option<Rate>,
    user: Option<Rate>,
    logs: Logs,
}

enum Logs {
    Memory(moka::sync::Cache<String, Arc<Mutex<VecDeque<Instant>>>>),
    Redis(Arc<RedisLogs>),
}

impl std::fmt::Debug for RequestThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let logs = match self.logs {
            Logs::Memory(_) => "memory",
            Logs::Redis(_) => "redis",
        };
        f.debug_struct("RequestThrottle")
            .field("anon", &self.anon)
            .field("user", &self.user)
            .field("logs", &logs)
            .finish()
    }
}

impl RequestThrottle {
    /// `None` when both rates are off. `redis`: its URL and the prefix of every key. A Redis
    /// URL that cannot be parsed is an error; a
    /// Redis that is down is not (it is tried on each request, within the backoff).
    pub fn new(
        anon: Option<Rate>,
        user: Option<Rate>,
        redis: Option<(&str, &str)>,
    ) -> Result<Option<Self>, redis::RedisError> {
        let Some(longest) = [anon, user].into_iter().flatten().map(|r| r.period).max() else {
            return Ok(None);
        };
        let logs = match redis {
            Some((url, prefix)) => Logs::Redis(Arc::new(RedisLogs::new(url, prefix)?)),
            None => Logs::Memory(
                moka::sync::Cache::builder()
                    .max_capacity(MEMORY_KEYS)
                    .time_to_idle(longest)
                    .build(),
            ),
        };
        Ok(Some(Self { anon, user, logs }))
    }

    /// Connects to Redis, if it is used, before the first request needs it.
    pub async fn connect(&self) {
        if let Logs::Redis(redis) = &self.logs {
            redis.connect().await;
        }
    }

    /// Whether Redis answers within `deadline`, for readiness; `None` when the logs are kept in
    /// memory. Asks on a connection of its own when the throttles have none, and changes
    /// nothing the throttles do.
    pub async fn redis_answers(&self, deadline: Duration) -> Option<bool> {
        match &self.logs {
            Logs::Memory(_) => None,
            Logs::Redis(redis) => Some(redis.answers(deadline).await),
        }
    }

    /// Logs the request where it is admitted; `Err(seconds)` when a throttle refuses it: the
    /// longest wait, rounded up, as DRF's `Retry-After`.
    pub async fn check(&self, requester: Requester<'_>) -> Result<(), u64> {
        let mut limits: Vec<(String, Rate)> = Vec::with_capacity(2);
        if let (Some(rate), Requester::Anonymous { client }) = (self.anon, requester) {
            limits.push((format!("anon:{client}"), rate));
        }
        if let Some(rate) = self.user {
            let ident = match requester {
                Requester::Anonymous { client } => client.to_owned(),
                Requester::User { id } => id.to_string(),
            };
            limits.push((format!("user:{ident}"), rate));
        }
        if limits.is_empty() {
            return Ok(());
        }
        let wait = match &self.logs {
            Logs::Memory(cache) => memory_check(cache, &limits),
            Logs::Redis(redis) => redis.check(&limits).await,
        };
        match wait {
            Duration::ZERO => Ok(()),
            wait => Err(wait.as_millis().div_ceil(1000).max(1) as u64),
        }
    }
}

fn memory_check(
    cache: &moka::sync::Cache<String, Arc<Mutex<VecDeque<Instant>>>>,
    limits: &[(String, Rate)],
) -> Duration {
    let now = Instant::now();
    let mut wait = Duration::ZERO;
    for (key, rate) in limits {
        let log = cache.get_with_by_ref(key, Default::default);
        let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while log
            .front()
            .is_some_and(|at| now.duration_since(*at) >= rate.period)
        {
            log.pop_front();
        }
        let count = rate.count as usize;
        if log.len() >= count {
            let keeping_out = log[log.len() - count];
            wait = wait.max(rate.period.saturating_sub(now.duration_since(keeping_out)));
        } else {
            log.push_back(now);
        }
    }
    wait
}

/// The same log as a sorted set per key, scored by Redis' own clock (instances' clocks may
/// disagree), checked and written in one script so concurrent requests cannot both take the
/// last place.
const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local wait = 0
for index, key in ipairs(KEYS) do
  local count = tonumber(ARGV[index * 2])
  local period = tonumber(ARGV[index * 2 + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
  local logged = redis.call('ZCARD', key)
  if logged >= count then
    local keeping_out = redis.call('ZRANGE', key, logged - count, logged - count, 'WITHSCORES')
    wait = math.max(wait, tonumber(keeping_out[2]) + period - now)
  else
    redis.call('ZADD', key, now, ARGV[1])
    redis.call('PEXPIRE', key, period)
  end
end
return wait
";

struct RedisLogs {
    client: redis::Client,
    /// Only to scrub what the driver says of it; never printed.
    url: String,
    prefix: String,
    script: redis::Script,
    connection: Mutex<Option<MultiplexedConnection>>,
    connecting: AtomicBool,
    skip_until: Mutex<Option<Instant>>,
    down: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RedisLogs {
    fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
            connection: Mutex::new(None),
            connecting: AtomicBool::new(false),
            skip_until: Mutex::new(None),
            down: AtomicBool::new(false),
        })
    }

    /// Connects and loads the script, so that requests only ever pay for one call.
    async fn connect(&self) {
        let connected = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            self.script
                .prepare_invoke()
                .load_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(connection)
        })
        .await;
        match connected {
            Ok(Ok(connection)) => *lock(&self.connection) = Some(connection),
            Ok(Err(err)) => self.failed(err.to_string()),
            Err(_) => self.failed(format!(
                "no connection within {} ms",
                REDIS_CONNECT_TIMEOUT.as_millis()
            )),
        }
    }

    async fn answers(&self, deadline: Duration) -> bool {
        let existing = lock(&self.connection).clone();
        tokio::time::timeout(deadline, async {
            let mut connection = match existing {
                Some(connection) => connection,
                None => self.client.get_multiplexed_async_connection().await?,
            };
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .is_ok_and(|answered| answered.is_ok())
    }

    /// The connection, or `None` while there is none: one is then made in the background
    /// and the request goes on without waiting for it.
    fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        if let Some(connection) = lock(&self.connection).clone() {
            return Some(connection);
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            let logs = Arc::clone(self);
            tokio::spawn(async move {
                logs.connect().await;
                logs.connecting.store(false, Ordering::Release);
            });
        }
        None
    }

    fn failed(&self, cause: String) {
        *lock(&self.skip_until) = Some(Instant::now() + REDIS_BACKOFF);
        *lock(&self.connection) = None;
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error = %crate::telemetry::scrub_url_secret(&cause, &self.url),
                "Redis is unreachable: requests go on without the request-rate throttles until it answers (tried again every {} s)",
                REDIS_BACKOFF.as_secs()
            );
        }
    }

    async fn check(self: &Arc<Self>, limits: &[(String, Rate)]) -> Duration {
        if lock(&self.skip_until).is_some_and(|until| Instant::now() < until) {
            return Duration::ZERO;
        }
        let Some(mut connection) = self.connection() else {
            return Duration::ZERO;
        };
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(member());
        for (key, rate) in limits {
            invocation
                .key(format!("{}{key}", self.prefix))
                .arg(rate.count)
                .arg(rate.period.as_millis() as u64);
        }
        let called = tokio::time::timeout(
            REDIS_TIMEOUT,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        match called {
            Ok(Ok(wait_ms)) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("Redis answers again: the request-rate throttles hold again");
                }
                Duration::from_millis(wait_ms.max(0) as u64)
            }
            Ok(Err(err)) => {
                self.failed(err.to_string());
                Duration::ZERO
            }
            Err(_) => {
                self.failed(format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()));
                Duration::ZERO
            }
        }
    }
}

/// A sorted-set member unique to this request, so requests in the same millisecond all count.
fn member() -> String {
    use rand::Rng as _;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Counts the warnings that say Redis is unreachable.
    struct Outages(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Outages {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _context: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// No Redis at the URL: every request is admitted, quickly, and the outage is logged once
    /// however often Redis is tried again.
    #[test]
    fn an_unreachable_redis_admits_everything_and_is_logged_once() {
        let nobody = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let warnings = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Outages(warnings.clone()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let throttle = RequestThrottle::new(
                    None,
                    Rate::parse("1/h").expect("rate"),
                    Some((&format!("redis://127.0.0.1:{nobody}"), "test:")),
                )
                .expect("a Redis URL")
                .expect("a throttle");
                throttle.connect().await;
                for round in 0..2 {
                    for _ in 0..5 {
                        let started = Instant::now();
                        assert_eq!(throttle.check(Requester::User { id: 1 }).await, Ok(()));
                        assert!(started.elapsed() < REDIS_TIMEOUT);
                    }
                    if round == 0 {
                        tokio::time::sleep(REDIS_BACKOFF + Duration::from_millis(200)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            })
        });
        assert_eq!(warnings.load(Ordering::SeqCst), 1);
    }
}
