//! How memory and time are measured, the same way for every model.
//!
//! CPU backends (flex, ndarray) allocate through Rust's global allocator, so
//! [`CountingAllocator`] sees every tensor: its peak is exact. GPU backends keep
//! tensors in the device's memory pool, sampled by the training loop. The process's
//! peak resident set size is recorded beside either.
//!
//! Memory that cannot be had is handled twice: a configuration whose estimated step does
//! not fit the machine is refused before anything is written ([`check_fits`]); an
//! allocation that fails anyway during training leaves the failed record prepared for it
//! ([`arm_out_of_memory_record`]) instead of no record at all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use anyhow::bail;

use crate::records::device_name::Backend;
use crate::records::run_config::RunConfig;

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
// are updated only after an allocation succeeded or before a deallocation. A failed
// allocation writes the armed record with system calls alone (no allocation, no unwind)
// and returns the null it got.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if ptr.is_null() {
            write_armed_record();
        } else {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if ptr.is_null() {
            write_armed_record();
        } else {
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
        if new.is_null() {
            write_armed_record();
        } else {
            Self::shrank(layout.size());
            Self::grew(new_size);
        }
        new
    }
}

/// A run's failed record, rendered before training, and where it goes.
struct ArmedRecord {
    bytes: Vec<u8>,
    temp: CString,
    target: CString,
}

/// The record a failed allocation writes; null when none is armed. Whoever swaps it out
/// owns it: the allocator (which leaks it, the process is about to abort) or the guard.
static ARMED: AtomicPtr<ArmedRecord> = AtomicPtr::new(null_mut());

/// Disarms the record when dropped (the run ended and writes its own record).
pub struct ArmedGuard(());

impl Drop for ArmedGuard {
    fn drop(&mut self) {
        let armed = ARMED.swap(null_mut(), Ordering::SeqCst);
        if !armed.is_null() {
            // SAFETY: the pointer came from Box::into_raw in arm_out_of_memory_record and
            // the swap made this the only owner.
            drop(unsafe { Box::from_raw(armed) });
        }
    }
}

/// Prepares `record` (the bytes of a failed record, out of memory) to be written to
/// `target` if an allocation fails before the guard is dropped. A global allocator may
/// not unwind, nor safely allocate once memory is gone, so the bytes and both paths
/// are made now; on failure the allocator writes them to a temporary file beside
/// `target` with raw system calls, syncs it and renames it over `target`, then returns
/// the null and std aborts with its one-line message. A failure the caller would have
/// survived (a `try_reserve`) also writes it: the run's own record replaces it when the
/// run ends, but the record is written once only.
pub fn arm_out_of_memory_record(record: Vec<u8>, target: &Path) -> anyhow::Result<ArmedGuard> {
    use std::os::unix::ffi::OsStrExt;
    // Staged as every writer stages (`.writing-*` beside the target), so that what cleans
    // those up after a crash cleans this up too.
    let name = target.file_name().map(|n| n.as_bytes()).unwrap_or(b"record");
    let mut temp = target.parent().unwrap_or(Path::new(".")).as_os_str().as_bytes().to_vec();
    temp.extend_from_slice(b"/.writing-out-of-memory-");
    temp.extend_from_slice(name);
    let armed =
        Box::new(ArmedRecord { bytes: record, temp: CString::new(temp)?, target: CString::new(target.as_os_str().as_bytes())? });
    let previous = ARMED.swap(Box::into_raw(armed), Ordering::SeqCst);
    if !previous.is_null() {
        // SAFETY: as in ArmedGuard::drop; one run per process arms at a time.
        drop(unsafe { Box::from_raw(previous) });
    }
    Ok(ArmedGuard(()))
}

/// Writes the armed record, if any, with system calls only (see
/// [`arm_out_of_memory_record`]).
fn write_armed_record() {
    let armed = ARMED.swap(null_mut(), Ordering::SeqCst);
    if armed.is_null() {
        return;
    }
    // SAFETY: the swap made this the only owner; it is never freed (the process aborts).
    let armed = unsafe { &*armed };
    // SAFETY: plain system calls on NUL-terminated paths and a live buffer.
    unsafe {
        let fd = libc::open(armed.temp.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
        if fd < 0 {
            return;
        }
        let mut written = 0usize;
        while written < armed.bytes.len() {
            let rest = &armed.bytes[written..];
            let n = libc::write(fd, rest.as_ptr().cast(), rest.len());
            if n > 0 {
                written += n as usize;
            } else if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            } else {
                break;
            }
        }
        let synced = libc::fsync(fd) == 0;
        libc::close(fd);
        if written == armed.bytes.len() && synced {
            libc::rename(armed.temp.as_ptr(), armed.target.as_ptr());
        } else {
            libc::unlink(armed.temp.as_ptr());
        }
    }
}

/// Refuses a configuration whose training step cannot fit the memory there is: the low
/// estimate of [`RunConfig::step_memory_bytes`] against the machine's total memory
/// (sysinfo). For a GPU device this is the machine's memory too: burn 0.22 tells no
/// device's total before it runs, and a GPU rarely has more than its host. Unknown total
/// memory (0) refuses nothing.
pub fn check_fits(config: &RunConfig) -> anyhow::Result<()> {
    let needed = config.step_memory_bytes();
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let total = system.total_memory();
    let gib = |bytes: f64| bytes / f64::from(1u32 << 30);
    if total > 0 && (needed.is_nan() || needed > total as f64) {
        bail!(
            "the configuration cannot fit in memory: one training step needs at least {:.1} GiB (parameters with \
             their gradients and Adam's moments, and the activations kept for the backward, estimated from the \
             sizes), and this machine has {:.1} GiB{}",
            gib(needed),
            gib(total as f64),
            if matches!(config.device.backend(), Backend::Flex | Backend::Ndarray) {
                ""
            } else {
                " (the device's own memory is not known before it runs)"
            }
        );
    }
    Ok(())
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
