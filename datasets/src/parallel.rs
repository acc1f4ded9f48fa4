//! Work spread over the machine's cores whose result does not depend on how many there are.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::DataError;

/// Indices handed to a thread at a time: large enough that claiming them costs nothing,
/// small enough that the threads finish together.
const CHUNK: u64 = 64;

/// The number of threads to use by default: every core the process may run on.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` applied to every index of `indices`, on up to `threads` threads, returned in index
/// order: the same values for any thread count, as long as `f` depends only on its index.
/// On failure, the error of the lowest failing index among those computed.
pub fn map_indices<T: Send>(
    indices: Range<u64>,
    threads: usize,
    f: impl Fn(u64) -> Result<T, DataError> + Sync,
) -> Result<Vec<T>, DataError> {
    let count = indices.end.saturating_sub(indices.start);
    let chunks = count.div_ceil(CHUNK);
    let threads = threads.clamp(1, chunks.clamp(1, 1024) as usize);
    let next_chunk = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let work = || {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let chunk = next_chunk.fetch_add(1, Ordering::Relaxed);
            if chunk >= chunks {
                break;
            }
            let low = indices.start + chunk * CHUNK;
            let high = (low + CHUNK).min(indices.end);
            let values: Result<Vec<T>, DataError> = (low..high).map(&f).collect();
            if values.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            done.push((chunk, values));
        }
        done
    };
    let mut chunks_done: Vec<(u64, Result<Vec<T>, DataError>)> = if threads == 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        })
    };
    chunks_done.sort_by_key(|(chunk, _)| *chunk);
    let mut out = Vec::with_capacity(count as usize);
    for (_, values) in chunks_done {
        out.extend(values?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_index_order_for_any_thread_count() {
        let expected: Vec<u64> = (5..1000).map(|i| i * i).collect();
        for threads in [1, 2, 3, 8] {
            assert_eq!(map_indices(5..1000, threads, |i| Ok(i * i)).unwrap(), expected);
        }
        assert!(map_indices(3..3, 4, Ok).unwrap().is_empty());
    }

    #[test]
    fn a_failure_is_returned_not_lost() {
        let result = map_indices(0..500, 3, |i| if i == 321 { Err(DataError::new("bad 321")) } else { Ok(i) });
        assert_eq!(result.unwrap_err().message, "bad 321");
    }
}
