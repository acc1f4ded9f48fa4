//! Matrix products on flex whose output is a buffer of our own: the same products as
//! flex's `float_matmul`, bit for bit, without its output's two extra passes.
//!
//! flex makes every product's output with `FlexTensor::empty`, a zeroed byte vector that
//! burn's `Bytes` then copies into a buffer of stricter alignment: a zeroing (glibc's
//! `calloc` clears reused heap memory) and a copy of the whole output, both on the calling
//! thread while the pool's workers wait, before the product is computed. At 4K tokens
//! these were a third of a training step's serial time. Here the output is a plain
//! `Vec<f32>` that the product writes first (its numbers are never read before), handed
//! to flex as it is.
//!
//! The products are flex's (burn-flex 0.22.1, `ops::matmul`): the same calls of the
//! `gemm` crate, with the same sizes, strides, batch broadcasting and choice of threads,
//! so that the numbers are the same (the test below compares them with flex's).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

/// Work (multiply-adds) above which one product runs on every thread (flex's
/// `PARALLEL_THRESHOLD`).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// Work of a whole batch above which small products run a product per thread (flex's
/// `BATCH_PARALLEL_THRESHOLD`).
const BATCH_PARALLEL_WORK: usize = 128 * 128 * 128;

/// `lhs: [.., m, k] x rhs: [.., k, n] -> [.., m, n]`, the leading dimensions broadcast,
/// either operand a strided view; as flex's `float_matmul` (which other dtypes go to).
pub fn matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
    if lhs.dtype() != DType::F32 || rhs.dtype() != DType::F32 {
        return Flex::float_matmul(lhs, rhs);
    }
    let (lhs_shape, rhs_shape) = (lhs.layout().shape().to_vec(), rhs.layout().shape().to_vec());
    let (lhs_rank, rhs_rank) = (lhs_shape.len(), rhs_shape.len());
    assert!(lhs_rank >= 2 && rhs_rank >= 2, "matmul takes matrices");
    let (m, k, n) = (lhs_shape[lhs_rank - 2], lhs_shape[lhs_rank - 1], rhs_shape[rhs_rank - 1]);
    assert_eq!(k, rhs_shape[rhs_rank - 2], "matmul: inner dimensions {lhs_shape:?} x {rhs_shape:?}");

    let batch_shape = broadcast(&lhs_shape[..lhs_rank - 2], &rhs_shape[..rhs_rank - 2]);
    let batches: usize = batch_shape.iter().product();
    let lhs_batch_strides = batch_strides(&lhs_shape[..lhs_rank - 2], lhs.layout().strides(), batch_shape.len());
    let rhs_batch_strides = batch_strides(&rhs_shape[..rhs_rank - 2], rhs.layout().strides(), batch_shape.len());
    let matrix = |layout_strides: &[isize]| (layout_strides[layout_strides.len() - 2], layout_strides[layout_strides.len() - 1]);
    let operands = Operands {
        // The whole buffers' pointers moved to the views' first numbers (a view with a
        // negative stride reads before its first number).
        lhs: lhs.storage::<f32>().as_ptr().wrapping_add(lhs.layout().start_offset()),
        rhs: rhs.storage::<f32>().as_ptr().wrapping_add(rhs.layout().start_offset()),
        lhs_strides: matrix(lhs.layout().strides()),
        rhs_strides: matrix(rhs.layout().strides()),
        m,
        k,
        n,
    };

    let mut out_shape = batch_shape.clone();
    out_shape.extend([m, n]);
    let size = m * n;
    if k == 0 {
        // An empty sum: zeros (gemm would leave the output unwritten).
        return FlexTensor::from_data(TensorData::new(vec![0.0f32; batches * size], out_shape));
    }
    let mut out: Vec<f32> = Vec::with_capacity(batches * size);
    let offsets = |b: usize| (offset(b, &batch_shape, &lhs_batch_strides), offset(b, &batch_shape, &rhs_batch_strides));
    // flex's choice of threads: a large product on all of them, one at a time; a batch of
    // small ones (or of at least 4 whose work is large) a product per thread; else one
    // thread.
    let (work, total) = (m.saturating_mul(n).saturating_mul(k), batches.saturating_mul(m * n * k));
    let spread = batches >= 4 && total >= BATCH_PARALLEL_WORK;
    let ptr = SendPtr(out.as_mut_ptr());
    if batches > 1 && total >= BATCH_PARALLEL_WORK && (spread || work < PARALLEL_WORK) {
        (0..batches).into_par_iter().for_each(|b| {
            // SAFETY: output `b` lies within the capacity, and each task writes its own; the
            // operands' offsets are their layouts' (as flex computes them).
            unsafe { operands.multiply(ptr.at(b * size), offsets(b), gemm::Parallelism::None) };
        });
    } else {
        let parallelism = match work >= PARALLEL_WORK && !spread {
            true => gemm::Parallelism::Rayon(0),
            false => gemm::Parallelism::None,
        };
        for b in 0..batches {
            // SAFETY: as above.
            unsafe { operands.multiply(ptr.at(b * size), offsets(b), parallelism) };
        }
    }
    // SAFETY: the products above wrote every output number (`k > 0`).
    unsafe { out.set_len(batches * size) };
    FlexTensor::from_data(TensorData::new(out, out_shape))
}

/// The broadcast of two batch shapes (the shorter padded with leading 1s).
fn broadcast(lhs: &[usize], rhs: &[usize]) -> Vec<usize> {
    let len = lhs.len().max(rhs.len());
    let padded = |shape: &[usize], i: usize| if i < len - shape.len() { 1 } else { shape[i - (len - shape.len())] };
    (0..len)
        .map(|i| {
            let (a, b) = (padded(lhs, i), padded(rhs, i));
            assert!(a == b || a == 1 || b == 1, "matmul: batch shapes {lhs:?} and {rhs:?} do not broadcast");
            a.max(b)
        })
        .collect()
}

/// An operand's element strides over the broadcast batch dimensions: its layout's, 0 where
/// it has 1 (or no) such dimension.
fn batch_strides(batch: &[usize], layout_strides: &[isize], len: usize) -> Vec<isize> {
    let missing = len - batch.len();
    (0..len).map(|i| if i < missing || batch[i - missing] <= 1 { 0 } else { layout_strides[i - missing] }).collect()
}

/// The element offset of batch `b` (row-major over `shape`) with `strides`.
fn offset(b: usize, shape: &[usize], strides: &[isize]) -> isize {
    let mut rest = b;
    let mut at = 0;
    for (&size, &stride) in shape.iter().zip(strides).rev() {
        at += (rest % size) as isize * stride;
        rest /= size;
    }
    at
}

/// The two operands of a (batched) product: their first numbers, matrix strides (rows,
/// columns) and sizes.
struct Operands {
    lhs: *const f32,
    rhs: *const f32,
    lhs_strides: (isize, isize),
    rhs_strides: (isize, isize),
    m: usize,
    k: usize,
    n: usize,
}

// SAFETY: the pointers are only read, from borrowed tensors alive for the whole product.
unsafe impl Sync for Operands {}

impl Operands {
    /// One product into the `m x n` row-major matrix at `out`, the operands at `offsets`.
    ///
    /// # Safety
    /// `out` holds `m n` writable numbers; the offsets and strides stay within the
    /// operands' buffers.
    unsafe fn multiply(&self, out: *mut f32, (lhs, rhs): (isize, isize), parallelism: gemm::Parallelism) {
        let ((lhs_rs, lhs_cs), (rhs_rs, rhs_cs)) = (self.lhs_strides, self.rhs_strides);
        // SAFETY: as the caller promises; `read_dst` false: the output is only written
        // (`alpha` 0, `beta` 1: out = lhs rhs).
        unsafe {
            gemm::gemm(
                self.m,
                self.n,
                self.k,
                out,
                1,
                self.n as isize,
                false,
                self.lhs.offset(lhs),
                lhs_cs,
                lhs_rs,
                self.rhs.offset(rhs),
                rhs_cs,
                rhs_rs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            )
        }
    }
}

/// The output's first number, shared with the tasks that write its matrices.
struct SendPtr(*mut f32);

// SAFETY: each task writes only its own matrix.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The number `index` places further (a method, so that a task borrows the whole).
    fn at(&self, index: usize) -> *mut f32 {
        self.0.wrapping_add(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[.., rows, cols]` tensor of distinct numbers.
    fn numbers(shape: &[usize], seed: f32) -> FlexTensor {
        let len = shape.iter().product();
        let values: Vec<f32> = (0..len).map(|i| ((i as f32 + seed) * 0.618).sin() * 2.0).collect();
        FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
    }

    fn transposed(t: FlexTensor) -> FlexTensor {
        let rank = t.layout().shape().num_dims();
        Flex::float_swap_dims(t, rank - 2, rank - 1)
    }

    fn numbers_of(t: FlexTensor) -> (Vec<usize>, Vec<f32>) {
        let shape = t.layout().shape().to_vec();
        (shape, t.into_data().try_to_vec::<f32>().expect("f32 numbers"))
    }

    /// Every path (one large product on all threads, one small, a batch of small ones a
    /// product per thread, a batch of large ones in turn, batch broadcasting both ways,
    /// transposed operands, an empty sum) gives flex's product bit for bit.
    #[test]
    fn products_equal_flexs_bit_for_bit() {
        let cases: [(&[usize], &[usize], bool, bool); 9] = [
            (&[300, 200], &[200, 250], false, false),
            (&[7, 5], &[5, 3], false, false),
            (&[6, 40, 30], &[6, 30, 20], false, false),
            (&[2, 256, 200], &[1, 200, 300], false, false),
            (&[2, 3, 64, 48], &[3, 48, 64], false, false),
            (&[1, 48, 64], &[4, 2, 64, 8], false, false),
            (&[2, 200, 256], &[2, 200, 300], true, false),
            (&[2, 256, 200], &[300, 200], false, true),
            (&[3, 4, 0], &[3, 0, 5], false, false),
        ];
        for (i, (lhs, rhs, lhs_t, rhs_t)) in cases.into_iter().enumerate() {
            let operand = |shape: &[usize], t: bool, seed| match t {
                true => transposed(numbers(shape, seed)),
                false => numbers(shape, seed),
            };
            let (a, b) = (operand(lhs, lhs_t, 1.0), operand(rhs, rhs_t, 2.0));
            let ours = numbers_of(matmul(a.clone(), b.clone()));
            let flexs = numbers_of(Flex::float_matmul(a, b));
            assert_eq!(ours, flexs, "case {i}: {lhs:?} x {rhs:?}");
            // Zeros for the empty sum alone.
            assert_eq!(ours.1.iter().all(|&v| v == 0.0), lhs.contains(&0), "case {i}");
        }
        // A view with a negative stride (flex's flip) reads before its first number.
        let flipped = Flex::float_flip(numbers(&[2, 40, 30], 3.0), &[1]);
        let kernel = numbers(&[30, 20], 4.0);
        assert_eq!(numbers_of(matmul(flipped.clone(), kernel.clone())), numbers_of(Flex::float_matmul(flipped, kernel)));
    }
}
