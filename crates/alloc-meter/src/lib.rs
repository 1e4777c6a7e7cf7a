//! mimalloc as the global allocator, counting on each thread the bytes it
//! allocated less the bytes it freed, so that tailhook's transform runner can
//! stop a script that holds more than its memory cap.
//!
//! The only unsafe code tailhook depends on of its own: a `GlobalAlloc` that
//! delegates every call to mimalloc and adds or subtracts the size on a
//! thread-local counter (no allocation, no lock, no destructor). Kept in its
//! own crate so that tailhook's crates keep `#![forbid(unsafe_code)]`.
//!
//! ```
//! let before = alloc_meter::net_bytes();
//! let v = vec![0u8; 4096];
//! // Counted only when `Meter` is the global allocator of the program.
//! let _ = alloc_meter::net_bytes() - before;
//! drop(v);
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

thread_local! {
    /// Bytes this thread allocated less those it freed (frees of memory
    /// other threads allocated count too, so only differences mean anything).
    static NET: Cell<isize> = const { Cell::new(0) };
}

/// mimalloc, counting per thread; install with `#[global_allocator]`.
pub struct Meter;

#[inline(always)]
fn add(bytes: isize) {
    // `try_with`: never fails for a const-initialised Cell, but never panics either.
    let _ = NET.try_with(|n| n.set(n.get().wrapping_add(bytes)));
}

/// Bytes this thread allocated less those it freed, since it started (0 when
/// `Meter` is not the global allocator). Compare two readings.
#[inline]
pub fn net_bytes() -> isize {
    NET.try_with(Cell::get).unwrap_or(0)
}

unsafe impl GlobalAlloc for Meter {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = mimalloc::MiMalloc.alloc(layout);
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = mimalloc::MiMalloc.alloc_zeroed(layout);
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout);
        add(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = mimalloc::MiMalloc.realloc(ptr, layout, new_size);
        if !new.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        new
    }
}
