use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    return_large_blocks_when_freed();
    match authd::cli::run(authd::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("authd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc raises its mmap threshold whenever it frees a large mapped block; from then on blocks
/// of that size come from its arenas and, once freed, stay resident. A flood of 1.6 MB login
/// bodies then left authd hundreds of MiB larger than all it ever held at once (measured in
/// bench/serving.py). A fixed threshold keeps large, short-lived buffers (bodies, their parsed
/// copies) in mappings of their own that go back to the system when freed. Argon2's 19 MiB,
/// the largest allocation, is not one of them: each hash thread keeps its own.
fn return_large_blocks_when_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes plain values and is thread-safe (it locks the arenas it changes).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
