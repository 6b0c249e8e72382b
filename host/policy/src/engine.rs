//! The one wasmtime `Engine` every policy runs in: pooling allocator, epoch interruption driven by a ticker
//! thread, and a cache of precompiled components keyed by content hash and engine compatibility hash.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::policy_file::MAX_MEMORY_MIB;

/// How often the epoch advances. A deadline of `n` ms is `n` ticks, so a runaway guest stops within about one
/// tick (plus scheduling delay) of its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How many component instances may be alive at once across all policies. Calls beyond this fail as
/// `unavailable`; the hub bounds its blocking pool below it.
pub const MAX_CONCURRENT_INSTANCES: u32 = 128;

/// The most of a slot's written memory (and of its tables) that is reset by copying and stays mapped after a
/// call, when the kernel offers `PAGEMAP_SCAN`; a guest that wrote more has the rest unmapped. A Rust policy
/// writes a few hundred KiB, so this also bounds the memory kept per pool slot that has been used.
const KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;

/// Why the engine or a component could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot start the epoch ticker: {0}")]
    Ticker(std::io::Error),
    #[error("cannot compile the component: {0}")]
    Compile(String),
}

/// A cheap handle to the shared engine; clones share the engine, the ticker and the cache.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: wasmtime::Engine,
    cache_dir: Option<PathBuf>,
    clock: Arc<EpochClock>,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// The wall-clock meaning of the epoch: tick `n` is due `n` ticks after `started`, and `ticks_done` is how far
/// the ticker has advanced the engine. The two differ while the ticker thread waits for a core; a call that
/// starts then must not count the ticks the ticker still owes against its own budget.
struct EpochClock {
    started: Instant,
    /// Written by the ticker after each `increment_epoch`, so it never runs ahead of the engine's epoch.
    ticks_done: AtomicU64,
}

impl EpochClock {
    fn ticks_due(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos() / EPOCH_TICK.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// Ticks the ticker still owes (0 when it is on time). It may read high by the increments in flight, which
    /// only lengthens a deadline, never shortens it.
    fn lag(&self) -> u64 {
        self.ticks_due().saturating_sub(self.ticks_done.load(Ordering::Acquire))
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

/// A compiled component and whether it came from the cache.
pub struct CompiledComponent {
    pub component: Component,
    /// Hex SHA-256 of the component's bytes.
    pub content_hash: String,
    pub from_cache: bool,
    pub compile_time: Duration,
}

impl PolicyEngine {
    /// Creates the engine. `cache_dir` holds precompiled artifacts; it is created with mode 0700 because the
    /// host loads those artifacts as trusted machine code.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<PolicyEngine, EngineError> {
        let mut pooling = wasmtime::PoolingAllocationConfig::new();
        pooling
            .total_component_instances(MAX_CONCURRENT_INSTANCES)
            .total_core_instances(MAX_CONCURRENT_INSTANCES * 16)
            .total_memories(MAX_CONCURRENT_INSTANCES * 2)
            .total_tables(MAX_CONCURRENT_INSTANCES * 8)
            .max_memory_size(usize::try_from(MAX_MEMORY_MIB * 1024 * 1024).unwrap_or(usize::MAX));
        // How a slot is wiped after its call decides most of a call's cost. Without help, wasmtime unmaps the
        // slot's pages (madvise: page-table work and a TLB shootdown per call) and the next call page-faults
        // every page it touches again. With Linux's PAGEMAP_SCAN (6.7+) it finds the pages the guest wrote and
        // copies their original contents back instead, so nothing is unmapped and nothing faults (about half of
        // a call's time; benches/policy.rs). The wipe is as complete either way: every written page is reset.
        // Without PAGEMAP_SCAN, keeping memory resident would memset the slot's whole first MiB on every call,
        // which measured worse than madvise, so resident memory is used only with the scan.
        if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
            pooling
                .pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
                .table_keep_resident(KEEP_RESIDENT_BYTES);
        }
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
        let engine = wasmtime::Engine::new(&config).map_err(|error| EngineError::Engine(format!("{error:#}")))?;
        let clock = Arc::new(EpochClock { started: Instant::now(), ticks_done: AtomicU64::new(0) });
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let (clock, stop) = (clock.clone(), ticker_stop.clone());
            std::thread::Builder::new()
                .name("policy-epoch".to_owned())
                .spawn(move || run_ticker(&engine, &clock, &stop))
                .map_err(EngineError::Ticker)?
        };
        let mut cache_dir = cache_dir;
        if let Some(dir) = &cache_dir {
            // A missing cache is a slower start, not an error; `compile` reports nothing either.
            let _ = create_private_dir(dir);
            if dir.exists() && !owned_privately(dir) {
                tracing::warn!(
                    cache = %dir.display(),
                    "the policy cache is not the hub's own or others can write to it; compiling without it"
                );
                cache_dir = None;
            }
        }
        Ok(PolicyEngine {
            inner: Arc::new(EngineInner { engine, cache_dir, clock, ticker_stop, ticker: Some(ticker) }),
        })
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// Deadline, in epoch ticks from the engine's current epoch, for a wall-clock budget that starts now. The
    /// next tick may be due at any moment, so one tick more than the budget guarantees a guest at least its
    /// whole budget (it may get up to one tick extra). When the ticker is behind (its thread waited for a core
    /// on a busy machine), it is about to catch up in a burst; the ticks it owes are added, or that burst would
    /// interrupt a call that had barely started.
    pub(crate) fn deadline_ticks(&self, timeout: Duration) -> u64 {
        budget_ticks(timeout).saturating_add(self.inner.clock.lag())
    }

    /// Compiles a component, or rehydrates it from the cache. Runs on the loader thread, never on a request.
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledComponent, EngineError> {
        let started = Instant::now();
        let content_hash = hex(&Sha256::digest(bytes));
        let cache_file = self
            .inner
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{content_hash}-{:016x}.cwasm", self.compatibility_hash())));
        if let Some(cache_file) = &cache_file
            && let Some(component) = self.load_cached(cache_file)
        {
            return Ok(CompiledComponent {
                component,
                content_hash,
                from_cache: true,
                compile_time: started.elapsed(),
            });
        }
        let component =
            Component::new(&self.inner.engine, bytes).map_err(|error| EngineError::Compile(format!("{error:#}")))?;
        if let Some(cache_file) = &cache_file
            && let Ok(artifact) = component.serialize()
        {
            // Temp file plus rename, so a reader never sees half an artifact.
            let temporary = cache_file.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&temporary, artifact).is_ok() {
                let _ = std::fs::rename(&temporary, cache_file);
            }
        }
        Ok(CompiledComponent { component, content_hash, from_cache: false, compile_time: started.elapsed() })
    }

    fn load_cached(&self, cache_file: &Path) -> Option<Component> {
        if !owned_privately(cache_file) {
            return None;
        }
        let artifact = std::fs::read(cache_file).ok()?;
        if wasmtime::Engine::detect_precompiled(&artifact) != Some(wasmtime::Precompiled::Component) {
            return None;
        }
        // SAFETY: wasmtime runs precompiled artifacts as trusted machine code. This one was written by
        // `compile` above into a 0700 directory the host owns, it and the file are the host's and writable by
        // nobody else (`owned_privately`), and the file name carries both the hash of the source bytes and the
        // engine compatibility hash, so it is our own output for this exact engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.inner.engine, &artifact) };
        component.ok()
    }

    fn compatibility_hash(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner.engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.finish()
    }
}

/// Epoch ticks for a budget, plus the one tick that may be due at any moment.
fn budget_ticks(timeout: Duration) -> u64 {
    let tick_nanos = EPOCH_TICK.as_nanos().max(1);
    u64::try_from(timeout.as_nanos().div_ceil(tick_nanos)).unwrap_or(u64::MAX).max(1).saturating_add(1)
}

/// Advances the epoch by wall time, not by wakeups: after a late wakeup it catches up, so a runaway guest
/// still stops within milliseconds of its deadline when the machine is busy. Calls that started while the
/// ticker was behind had the owed ticks added to their deadline (`deadline_ticks`), so the burst does not cut
/// them short.
fn run_ticker(engine: &wasmtime::Engine, clock: &EpochClock, stop: &AtomicBool) {
    let mut ticks_done: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(EPOCH_TICK);
        let ticks_due = clock.ticks_due();
        while ticks_done < ticks_due {
            engine.increment_epoch();
            ticks_done += 1;
            // After the increment: a reader never sees more ticks done than the engine's epoch holds.
            clock.ticks_done.store(ticks_done, Ordering::Release);
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Whether `path` (not a symlink) belongs to this process's user and nobody else may write to it. Precompiled
/// artifacts are machine code the host runs, so a cache another user could write to would be a way into the hub.
fn owned_privately(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|metadata| {
        !metadata.file_type().is_symlink()
            && metadata.uid() == nix::unistd::geteuid().as_raw()
            && metadata.mode() & 0o022 == 0
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_set_while_the_ticker_is_behind_includes_the_owed_ticks() {
        // The ticker has done 100 ticks, but 500 ms have passed: the 400 owed ticks will come in one burst.
        let clock = EpochClock {
            started: Instant::now().checked_sub(Duration::from_millis(500)).expect("the clock is past 500 ms"),
            ticks_done: AtomicU64::new(100),
        };
        let lag = clock.lag();
        assert!((400..450).contains(&lag), "lag {lag}");
        // On time, nothing is added: a 200 ms budget is 201 ticks.
        assert_eq!(budget_ticks(Duration::from_millis(200)), 201);
        clock.ticks_done.store(clock.ticks_due() + 5, Ordering::Release);
        assert_eq!(clock.lag(), 0);
    }
}
