//! How long one Argon2id verification takes at authd's default cost, on one hash thread of an
//! otherwise idle pool: what `bench/run.py` relates login throughput to.
//!
//! `cargo run --release --example verify_time` prints `{"verify_ms": <median>}`.

use std::time::Instant;

use authd::crypto::{HashCost, PasswordHasher};

const ROUNDS: usize = 40;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hasher = PasswordHasher::new(HashCost::OWASP_MINIMUM, 1)?;
    let hashing = hasher.admit()?;
    let stored = hashing.hash("correct horse battery staple".into()).await?;
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let verified = hashing
            .verify("correct horse battery staple".into(), stored.clone())
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(verified.matches);
    }
    times.sort_by(f64::total_cmp);
    println!("{{\"verify_ms\": {:.3}}}", times[ROUNDS / 2]);
    Ok(())
}
