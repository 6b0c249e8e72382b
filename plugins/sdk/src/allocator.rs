//! The SDK's global allocator (feature `arena-allocator`, on by default): bump allocation in one small arena,
//! then libc's `malloc` for everything that does not fit.
//!
//! Why: the host runs every call in a fresh instance and discards it afterwards, so nothing a policy allocates
//! outlives its call, and most calls allocate a few kilobytes in a few dozen small blocks. dlmalloc's
//! bookkeeping was about a sixth of the GPU pod example's guest time; a bump allocation is a few instructions
//! and a free is nothing (docs/bench/policy.md).
//!
//! Invariants:
//! - libc's allocator stays the owner of the heap: the arena is one block `malloc`ed from it, so the two never
//!   hand out the same memory, and anything outside the arena is given back to libc.
//! - The arena is taken only from memory the instance already has (the unused end of its initial memory):
//!   growing linear memory costs more per call than the arena saves, so the arena shrinks to what is free, or
//!   is skipped.
//! - A freed block is reclaimed only when it is the newest one, so a growing `String` or `Vec` is extended in
//!   place; other frees inside the arena are dropped, bounded by the arena's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The most the arena takes; calls that need more continue in libc's heap.
const MAX_ARENA_BYTES: usize = 16 * 1024;
/// Left to libc's allocator in the initial memory, for its own headers and the arena block's.
const LIBC_RESERVE_BYTES: usize = 1024;
/// Below this the arena is not worth a `malloc`.
const MIN_ARENA_BYTES: usize = 2 * 1024;
const WASM_PAGE_BYTES: usize = 65_536;

unsafe extern "C" {
    /// Where the linker put the start of the heap, after the stack and static data.
    static __heap_base: u8;
}

pub struct ArenaAllocator {
    /// Whether the arena was set up (it may be empty when the initial memory had no room).
    initialized: Cell<bool>,
    start: Cell<usize>,
    /// The next free byte in the arena.
    next: Cell<usize>,
    end: Cell<usize>,
}

// SAFETY: a component instance runs one thread, so the cells are never accessed concurrently.
unsafe impl Sync for ArenaAllocator {}

impl ArenaAllocator {
    pub const fn new() -> ArenaAllocator {
        ArenaAllocator { initialized: Cell::new(false), start: Cell::new(0), next: Cell::new(0), end: Cell::new(0) }
    }

    /// Takes the arena from libc on first use, sized to the memory that is free without growing.
    fn initialize(&self) {
        self.initialized.set(true);
        let heap_base = std::ptr::addr_of!(__heap_base) as usize;
        let memory_end = core::arch::wasm32::memory_size(0) * WASM_PAGE_BYTES;
        let free = memory_end.saturating_sub(heap_base).saturating_sub(LIBC_RESERVE_BYTES);
        let size = free.min(MAX_ARENA_BYTES) & !15;
        if size < MIN_ARENA_BYTES {
            return;
        }
        // SAFETY: a valid layout of non-zero size.
        let arena = unsafe { System.alloc(Layout::from_size_align_unchecked(size, 16)) } as usize;
        if arena != 0 {
            self.start.set(arena);
            self.next.set(arena);
            self.end.set(arena + size);
        }
    }

    fn owns(&self, pointer: *mut u8) -> bool {
        (self.start.get()..self.end.get()).contains(&(pointer as usize))
    }
}

impl Default for ArenaAllocator {
    fn default() -> ArenaAllocator {
        ArenaAllocator::new()
    }
}

unsafe impl GlobalAlloc for ArenaAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.initialized.get() {
            self.initialize();
        }
        let start = self.next.get().next_multiple_of(layout.align());
        if self.start.get() != 0 && start.saturating_add(layout.size()) <= self.end.get() {
            self.next.set(start + layout.size());
            return start as *mut u8;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if !self.owns(pointer) {
            // SAFETY: not from the arena, so it came from `System` with this layout.
            return unsafe { System.dealloc(pointer, layout) };
        }
        if pointer as usize + layout.size() == self.next.get() {
            self.next.set(pointer as usize);
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(pointer) {
            // SAFETY: not from the arena, so it came from `System` with this layout.
            return unsafe { System.realloc(pointer, layout, new_size) };
        }
        let start = pointer as usize;
        if start + layout.size() == self.next.get() && start.saturating_add(new_size) <= self.end.get() {
            // The newest block grows or shrinks in place.
            self.next.set(start + new_size);
            return pointer;
        }
        // SAFETY: `new_size` with the old alignment is a valid layout by `realloc`'s contract; the old block is
        // `layout.size()` bytes and the new one at least `min(old, new)`, and they do not overlap.
        unsafe {
            let moved = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(pointer, moved, layout.size().min(new_size));
                self.dealloc(pointer, layout);
            }
            moved
        }
    }
}
