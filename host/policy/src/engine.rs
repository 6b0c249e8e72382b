//! The one wasmtime `Engine` every policy runs in: pooling allocator, epoch interruption driven by a ticker
//! thread, and a cache of precompiled components keyed by content hash and engine compatibility hash.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
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
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("policy-epoch".to_owned())
                .spawn(move || run_ticker(&engine, &stop))
                .map_err(EngineError::Ticker)?
        };
        if let Some(dir) = &cache_dir {
            // A missing cache is a slower start, not an error; `compile` reports nothing either.
            let _ = create_private_dir(dir);
        }
        Ok(PolicyEngine { inner: Arc::new(EngineInner { engine, cache_dir, ticker_stop, ticker: Some(ticker) }) })
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// Deadline in epoch ticks for a wall-clock budget. The next tick may be due at any moment, so one tick
    /// more than the budget guarantees a guest at least its whole budget (it may get up to one tick extra).
    pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
        let tick_nanos = EPOCH_TICK.as_nanos().max(1);
        u64::try_from(timeout.as_nanos().div_ceil(tick_nanos)).unwrap_or(u64::MAX).max(1).saturating_add(1)
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
        let artifact = std::fs::read(cache_file).ok()?;
        if wasmtime::Engine::detect_precompiled(&artifact) != Some(wasmtime::Precompiled::Component) {
            return None;
        }
        // SAFETY: wasmtime runs precompiled artifacts as trusted machine code. This one was written by
        // `compile` above into a 0700 directory the host owns, and the file name carries both the hash of the
        // source bytes and the engine compatibility hash, so it is our own output for this exact engine.
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

/// Advances the epoch by wall time, not by wakeups: after a late wakeup it catches up, so deadlines stay in
/// milliseconds even when the machine is busy.
fn run_ticker(engine: &wasmtime::Engine, stop: &AtomicBool) {
    let started = Instant::now();
    let mut ticks_done: u128 = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(EPOCH_TICK);
        let ticks_due = started.elapsed().as_nanos() / EPOCH_TICK.as_nanos().max(1);
        while ticks_done < ticks_due {
            engine.increment_epoch();
            ticks_done += 1;
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
