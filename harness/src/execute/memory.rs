//! How memory and time are measured, the same way for every model.
//!
//! CPU backends (flex, ndarray) allocate through Rust's global allocator, so
//! [`CountingAllocator`] sees every tensor: its peak is exact. GPU backends keep
//! tensors in the device's memory pool, sampled by the training loop. The process's
//! peak resident set size is recorded beside either.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting live and peak bytes.
pub struct CountingAllocator;

static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static PEAK_BYTES: AtomicU64 = AtomicU64::new(0);

impl CountingAllocator {
    fn grew(bytes: usize) {
        let live = LIVE_BYTES.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
    }

    fn shrank(bytes: usize) {
        LIVE_BYTES.fetch_sub(bytes as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters
// are updated only after an allocation succeeded or before a deallocation.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            Self::shrank(layout.size());
            Self::grew(new_size);
        }
        new
    }
}

/// Lets the C allocator reuse freed tensors instead of returning them to the system.
///
/// A training step allocates and frees the same large buffers again and again. glibc maps
/// each block above its (adaptive) threshold afresh and unmaps it when freed, so every
/// step pays page faults and the kernel's zeroing for its activations; and it trims the
/// heap's top back to the system as soon as it is free. With no block mapped on its own
/// (the threshold alone cannot do it: its largest value, 32 MiB, is exactly the size of a
/// 1K-token batch of score matrices) and no trimming, those buffers come back from the
/// heap. Measured on a 2-core CPU: the threshold at 32 MiB made quick Retrieval 10% faster
/// with the Transformer and 25% with Sparse Attention; no mapped blocks at all made the
/// Transformer's 1K step another 13% faster. The heap counts of [`CountingAllocator`] are
/// the bytes asked for, so they do not change; the resident set keeps what was freed and
/// can stay higher. (Threads' own arenas still map a block too large for one of their
/// heaps: glibc falls back to that whatever this setting.)
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Heap bytes live now (zero unless [`CountingAllocator`] is the global allocator).
pub fn live_heap_bytes() -> u64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// A window over which the heap's peak is measured.
pub struct HeapPeak {
    baseline: u64,
}

impl HeapPeak {
    /// Starts a window: the peak so far is forgotten.
    pub fn start() -> Self {
        let baseline = live_heap_bytes();
        PEAK_BYTES.store(baseline, Ordering::Relaxed);
        Self { baseline }
    }

    /// Whether the counting allocator is installed (otherwise nothing is counted).
    pub fn is_counting(&self) -> bool {
        self.baseline > 0
    }

    /// Peak live bytes since [`HeapPeak::start`], above what was live at the start.
    pub fn peak_above_baseline(&self) -> u64 {
        PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(self.baseline)
    }
}

/// The process's peak resident set size (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
