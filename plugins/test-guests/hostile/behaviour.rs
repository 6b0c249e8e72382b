//! What the four hostile test guests do wrong, chosen by their settings; each guest mounts this file as its
//! `behaviour` module (`#[path]`).

/// `{"behaviour": "...", "only_for": "name"}`. Behaviours: `ok`, `loop`, `memory-bomb`, `panic`, `malformed`,
/// `error`, `remember` (fails if it finds what an earlier call wrote), or `bad-settings` (refused by
/// validate-settings). With `only_for`, the guest misbehaves only when the call is about that user, so a version
/// passes the host's smoke call and fails on real traffic.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    behaviour: String,
    pub(crate) only_for: Option<String>,
}

/// Runs the chosen misbehaviour for a call about `user_name`; returns true when the caller should produce
/// malformed output.
pub(crate) fn misbehave(settings: &Settings, user_name: &str) -> Result<bool, String> {
    if settings.only_for.as_deref().is_some_and(|only_for| only_for != user_name) {
        return Ok(false);
    }
    match settings.behaviour.as_str() {
        "loop" => {
            let mut counter: u64 = 0;
            loop {
                // `black_box` keeps the optimiser from proving the loop has no effect.
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
        }
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 * 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        "panic" => panic!("hostile guest panics on purpose"),
        "error" => Err("hostile guest returns an error on purpose".to_owned()),
        "remember" => {
            // Marks a static and 1 MiB of heap that the allocator hands out as already zeroed; a later call
            // that finds a mark saw an earlier call's memory.
            static MARK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            if MARK.swap(1, std::sync::atomic::Ordering::Relaxed) != 0 {
                return Err("a static still holds an earlier call's mark".to_owned());
            }
            let mut heap = vec![0u8; 1024 * 1024];
            if heap.iter().any(|byte| *byte != 0) {
                return Err("fresh heap still holds an earlier call's bytes".to_owned());
            }
            heap.fill(0xab);
            std::hint::black_box(&heap);
            Ok(false)
        }
        "malformed" => Ok(true),
        _ => Ok(false),
    }
}

pub(crate) fn validate(settings: &Settings) -> Result<(), String> {
    if settings.behaviour == "bad-settings" {
        Err("behaviour bad-settings is refused on purpose".to_owned())
    } else {
        Ok(())
    }
}
