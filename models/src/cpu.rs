//! What the fused CPU operations ([`crate::attention::softmax`], [`crate::gelu`]) share:
//! reading and making tensors of the CPU backends as plain row-major numbers, the size of
//! a parallel task, and an `exp` and lane-wise reductions written so that the compiler
//! vectorises the loops over them (the standard library's `f32::exp` is a call per element,
//! and a plain `sum` is a chain of dependent additions).

// ndarray is deprecated in burn, and kept selectable here.
#![allow(deprecated)]

use std::borrow::Cow;
use std::mem::MaybeUninit;

use burn::backend::flex::FlexTensor;
use burn::backend::ndarray::NdArrayTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, NdArray, TensorMetadata};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

/// Reading and making f32 tensors of a CPU backend as plain row-major numbers.
pub trait RowMajor: Backend {
    fn with_values<R>(tensor: FloatTensor<Self>, read: impl FnOnce(&[f32]) -> R) -> R;
    fn from_values(values: Vec<f32>, shape: Shape) -> FloatTensor<Self>;

    /// `map` over the numbers of `tensor`, into a tensor of the same shape.
    fn map_values(tensor: FloatTensor<Self>, map: impl FnOnce(&[f32]) -> Vec<f32>) -> FloatTensor<Self> {
        let shape = tensor.shape();
        Self::from_values(Self::with_values(tensor, map), shape)
    }

    /// `tensor` in a buffer of its own numbers alone: a view (a range of columns, say) is
    /// copied out of the larger tensor it was cut from, so that keeping it for a backward
    /// does not keep that whole tensor alive.
    fn compact(tensor: FloatTensor<Self>) -> FloatTensor<Self>;

    /// [`RowMajor::with_values`] of several tensors at once: `read` gets the numbers of
    /// each, borrowed where the tensor lies in order (not copied out, as reading each
    /// with `with_values` into a vector of its own would).
    fn with_all<R, const N: usize>(tensors: [FloatTensor<Self>; N], read: impl FnOnce([&[f32]; N]) -> R) -> R;

    /// The backend's `float_matmul`, the same numbers; on flex into an output buffer of
    /// our own ([`crate::product`]).
    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }

    /// `x + bias` on every row: `x: [.., d]`, `bias: [d]`, as burn's broadcast sum (the
    /// same numbers); on flex in place where `x` is a buffer of its own.
    fn plus_rows(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        broadcast_plus_rows::<Self>(x, bias)
    }

    /// `grad: [.., d]` summed over every dimension but the last, as burn's autodiff sums a
    /// bias's gradient (see [`sum_leading`]) -> `[d]`.
    fn sum_rows(grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let dims = grad.shape().to_vec();
        let d = dims.last().copied().unwrap_or(1);
        Self::from_values(Self::with_values(grad, |values| sum_leading(values, &dims)), Shape::new([d]))
    }
}

/// `x + bias` on every row by the backend's broadcast sum: `x: [.., d]`, `bias: [d]`.
fn broadcast_plus_rows<B: Backend>(x: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    let rank = x.shape().num_dims();
    let mut dims = vec![1; rank];
    dims[rank - 1] = bias.shape()[0];
    B::float_add(x, B::float_reshape(bias, Shape::from(dims)))
}

/// `values: [a_0, .., a_k, d]` (row-major) summed over every dimension but the last, one
/// dimension after another from the first, each sum from 0 in index order: the numbers
/// of burn's autodiff, which sums a broadcast operand's gradient dimension by dimension,
/// and flex's sums, which add rows in order. In parallel tasks of a block of columns,
/// which read every row once.
pub fn sum_leading(values: &[f32], dims: &[usize]) -> Vec<f32> {
    let (leading, d) = dims.split_at(dims.len().saturating_sub(1));
    let d = d.first().copied().unwrap_or(1);
    // Strides of the leading dimensions, in numbers.
    let mut strides = vec![d; leading.len()];
    for i in (0..leading.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * leading[i + 1];
    }
    let ([sums], _) = par_blocks(d, SUM_COLUMNS, |first, [out]| {
        let sums = sum_level(values, leading, &strides, leading.len(), 0, first, out.len());
        out.copy_from_slice(&sums[..out.len()]);
    });
    sums
}

/// Columns per task of [`sum_leading`].
const SUM_COLUMNS: usize = 64;

/// The sums over the dimensions `0..level` of the columns `first..first + width` of the
/// block at `base`: level 0 is the numbers themselves.
fn sum_level(
    values: &[f32],
    leading: &[usize],
    strides: &[usize],
    level: usize,
    base: usize,
    first: usize,
    width: usize,
) -> [f32; SUM_COLUMNS] {
    let mut sums = [0.0f32; SUM_COLUMNS];
    if level == 0 {
        sums[..width].copy_from_slice(&values[base + first..base + first + width]);
        return sums;
    }
    let dim = level - 1;
    for i in 0..leading[dim] {
        let inner = sum_level(values, leading, strides, dim, base + i * strides[dim], first, width);
        sums.iter_mut().zip(&inner[..width]).for_each(|(sum, x)| *sum += x);
    }
    sums
}

/// `tensor` laid out in order: itself where it is (and, when `alone`, covers its whole
/// buffer); a view whose rows are runs of adjacent numbers (a range of columns, say)
/// copied a block of rows per parallel task; any other layout by flex's own copy (which
/// runs on one thread).
fn in_order(tensor: FlexTensor, alone: bool) -> FlexTensor {
    let in_place = tensor.as_slice::<f32>().map(|values| values.len());
    if in_place.is_some_and(|len| !alone || len == tensor.storage::<f32>().len()) {
        return tensor;
    }
    let layout = tensor.layout();
    let (shape, strides, offset) = (layout.shape().clone(), layout.strides().to_vec(), layout.start_offset());
    let rank = strides.len();
    let rows_by_strides = rank >= 2 && strides[rank - 1] == 1 && strides.iter().all(|&stride| stride >= 0);
    if !rows_by_strides || tensor.dtype() != burn::tensor::DType::F32 {
        return tensor.to_contiguous();
    }
    let width = shape[rank - 1].max(1);
    let storage = tensor.storage::<f32>();
    let ([values], _) = par_blocks(shape.num_elements(), rows_per_task(width) * width, |first, [part]| {
        for (i, row) in part.chunks_exact_mut(width).enumerate() {
            // The row's index over the leading axes, last axis fastest, to its first number.
            let (mut index, mut source) = (first / width + i, offset);
            for axis in (0..rank - 1).rev() {
                source += index % shape[axis] * strides[axis] as usize;
                index /= shape[axis];
            }
            row.copy_from_slice(&storage[source..source + width]);
        }
    });
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl RowMajor for Flex {
    fn matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
        crate::product::matmul(lhs, rhs)
    }

    fn plus_rows(mut x: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let bias = in_order(bias, false);
        let whole = x.is_contiguous() && x.layout().start_offset() == 0;
        let added = match (whole, x.try_storage_mut::<f32>(), bias.as_slice::<f32>()) {
            (true, Some(values), Some(bias)) if !bias.is_empty() && values.len() % bias.len() == 0 => {
                values.par_chunks_mut(rows_per_task(bias.len()) * bias.len()).for_each(|rows| {
                    for row in rows.chunks_mut(bias.len()) {
                        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
                    }
                });
                true
            }
            _ => false,
        };
        if added { x } else { broadcast_plus_rows::<Flex>(x, bias) }
    }

    fn with_values<R>(tensor: FlexTensor, read: impl FnOnce(&[f32]) -> R) -> R {
        let tensor = in_order(tensor, false);
        read(tensor.as_slice::<f32>().expect("a contiguous f32 tensor"))
    }

    fn from_values(values: Vec<f32>, shape: Shape) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    fn compact(tensor: FlexTensor) -> FlexTensor {
        // A copy unless the tensor covers its whole buffer, in order.
        in_order(tensor, true)
    }

    fn with_all<R, const N: usize>(tensors: [FlexTensor; N], read: impl FnOnce([&[f32]; N]) -> R) -> R {
        let tensors = tensors.map(|tensor| in_order(tensor, false));
        read(std::array::from_fn(|i| tensors[i].as_slice::<f32>().expect("a contiguous f32 tensor")))
    }
}

impl RowMajor for NdArray {
    fn with_values<R>(tensor: NdArrayTensor, read: impl FnOnce(&[f32]) -> R) -> R {
        match tensor {
            NdArrayTensor::F32(storage) => {
                let view = storage.view();
                let standard = view.as_standard_layout();
                let values: Cow<[f32]> = match standard.as_slice() {
                    Some(values) => Cow::Borrowed(values),
                    None => Cow::Owned(standard.iter().copied().collect()),
                };
                read(&values)
            }
            other => panic!("the fused CPU operations take f32 tensors, not {:?}", other.dtype()),
        }
    }

    fn from_values(values: Vec<f32>, shape: Shape) -> NdArrayTensor {
        NdArrayTensor::from_data(TensorData::new(values, shape))
    }

    fn compact(tensor: NdArrayTensor) -> NdArrayTensor {
        let in_order = matches!(&tensor, NdArrayTensor::F32(storage) if storage.view().is_standard_layout());
        if in_order {
            return tensor;
        }
        let shape = tensor.shape();
        Self::from_values(Self::with_values(tensor, <[f32]>::to_vec), shape)
    }

    fn with_all<R, const N: usize>(tensors: [NdArrayTensor; N], read: impl FnOnce([&[f32]; N]) -> R) -> R {
        let values = tensors.map(|tensor| Self::with_values(tensor, <[f32]>::to_vec));
        read(std::array::from_fn(|i| values[i].as_slice()))
    }
}

/// Whether `x` lives on a CPU backend with the fused kernels (f32 on flex or ndarray).
pub fn runs_natively<const D: usize>(x: &Tensor<D>) -> bool {
    use burn::backend::DispatchDevice;
    matches!(x.device().as_dispatch().clone().inner(), DispatchDevice::Flex(_) | DispatchDevice::NdArray(_))
        && x.dtype() == burn::tensor::DType::F32
}

/// `out[i] = f(x[i], other[i])` over equal-length slices, compiled for AVX2 (8 f32 at a
/// time) where the processor has it, for the x86-64 baseline (SSE2, 4 at a time) elsewhere.
///
/// The binary is built for the baseline so that it runs on any x86-64 processor. This loop
/// is compiled a second time inside an AVX2 function and chosen at run time. Both compute
/// every number identically (Rust never fuses a product and a sum on its own; tested).
pub fn zip_into(out: &mut [f32], x: &[f32], other: &[f32], f: &impl Fn(f32, f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, checked just above.
        return unsafe { zip_into_avx2(out, x, other, f) };
    }
    zip_each(out, x, other, f)
}

/// `work()`, compiled for AVX2 where the processor has it, as [`zip_into`]'s loop: for a
/// task's whole body (the scans' loops over time), written as one closure so that it is
/// inlined into the AVX2 function (what it calls out of line stays baseline code).
#[inline(always)]
pub fn vectorised<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, checked just above.
        return unsafe { with_avx2(work) };
    }
    work()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// `work()` with subnormal numbers (below f32's normal range, `|x| < 1.2e-38`) taken and
/// given as zero, on x86-64 (the MXCSR's flush-to-zero and denormals-are-zero bits, set
/// for `work` alone on the calling thread and restored after it; elsewhere `work()` as it
/// is).
///
/// For the scans' loops over time: a gradient carried back through thousands of decays
/// (from a classifier that reads one position, every other position's gradient is what
/// the decays carry) passes through the subnormal range on its way to zero, and each
/// operation on a subnormal number takes the processor about a hundred times as long (the
/// top layer's backward scan of Mamba took ten times its forward at 4K tokens). The
/// numbers flushed are below anything an f32 sum with a normal term keeps. `work` must not
/// hand work to other threads (their registers keep their own setting).
#[inline(always)]
pub fn without_subnormals<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        // Bit 15: flush to zero (subnormal results); bit 6: denormals are zero (inputs).
        const FLUSH: u32 = 1 << 15 | 1 << 6;
        let mut saved = 0u32;
        // SAFETY: `stmxcsr` stores the 4-byte register at the address of `saved`.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags)) };
        let flushing = saved | FLUSH;
        // SAFETY: `ldmxcsr` loads a valid MXCSR value (the current one with two mode bits
        // set) from the address of `flushing`.
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &flushing, options(nostack, preserves_flags, readonly)) };
        let result = work();
        // SAFETY: as above, the value saved from the register itself.
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &saved, options(nostack, preserves_flags, readonly)) };
        result
    }
    #[cfg(not(target_arch = "x86_64"))]
    work()
}

#[inline(always)]
fn zip_each(out: &mut [f32], x: &[f32], other: &[f32], f: &impl Fn(f32, f32) -> f32) {
    out.iter_mut().zip(x.iter().zip(other)).for_each(|(y, (&x, &o))| *y = f(x, o));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn zip_into_avx2(out: &mut [f32], x: &[f32], other: &[f32], f: &impl Fn(f32, f32) -> f32) {
    zip_each(out, x, other, f)
}

/// Elements per parallel task: at least this many numbers (short rows are grouped, so a
/// task is not smaller than its scheduling).
pub const TASK_ELEMENTS: usize = 1 << 14;

/// Rows per parallel task for rows of `width`.
pub fn rows_per_task(width: usize) -> usize {
    (TASK_ELEMENTS / width.max(1)).max(1)
}

/// `N` vectors of `len` numbers made in parallel tasks of `block` numbers each:
/// `fill(start, parts)` writes the numbers `start..start + block` of each output (the
/// last task's parts are shorter), and what the tasks return comes back in task order.
///
/// Each task zeroes its own parts just before `fill` writes them. `vec![0.0; len]` would
/// zero the whole vector first, in one pass on one thread through main memory (glibc's
/// `calloc` must clear reused heap memory); here the zeroes go to the task's cache, and the
/// writes after them hit it.
pub fn par_blocks<const N: usize, R: Send>(
    len: usize,
    block: usize,
    fill: impl Fn(usize, [&mut [f32]; N]) -> R + Sync,
) -> ([Vec<f32>; N], Vec<R>) {
    let block = block.max(1);
    let mut outputs: [Box<[MaybeUninit<f32>]>; N] = std::array::from_fn(|_| Box::new_uninit_slice(len));
    let starts = Starts(outputs.each_mut().map(|output| output.as_mut_ptr()));
    let results = (0..len.div_ceil(block))
        .into_par_iter()
        .map(|task| {
            let start = task * block;
            let end = (start + block).min(len);
            // SAFETY: `start..end` lies within the outputs' `len` numbers, and no two tasks'
            // ranges overlap.
            fill(start, unsafe { zeroed_parts(starts.pointers(), start, end) })
        })
        .collect();
    // SAFETY: the tasks cover `0..len`, and each zeroed its range before anything else.
    let outputs = outputs.map(|output| unsafe { output.assume_init() }.into_vec());
    (outputs, results)
}

/// The outputs' first numbers, shared with the tasks of [`par_blocks`].
struct Starts<const N: usize>([*mut MaybeUninit<f32>; N]);

// SAFETY: the tasks write through these pointers only to their own disjoint ranges.
unsafe impl<const N: usize> Sync for Starts<N> {}

impl<const N: usize> Starts<N> {
    /// The pointers (a method, so that a task's closure borrows the whole shared struct).
    fn pointers(&self) -> [*mut MaybeUninit<f32>; N] {
        self.0
    }
}

/// Numbers `start..end` of each output, zeroed.
///
/// # Safety
/// `start..end` lies within every output, and no other part over it is alive for `'a`.
unsafe fn zeroed_parts<'a, const N: usize>(outputs: [*mut MaybeUninit<f32>; N], start: usize, end: usize) -> [&'a mut [f32]; N] {
    outputs.map(|output| zeroed(unsafe { std::slice::from_raw_parts_mut(output.add(start), end - start) }))
}

/// `part` set to zero, as numbers.
fn zeroed(part: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    part.iter_mut().for_each(|x| {
        x.write(0.0);
    });
    // SAFETY: every element was written just above; `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Independent accumulators in the reductions: one vector register of f32 (or two of SSE).
const LANES: usize = 8;

/// `e^x` in f32, without branches, so that a loop over a slice vectorises: `x = n ln 2 + r`
/// with `|r| <= ln 2 / 2`, `e^r` by Cephes' `expf` polynomial (relative error about 1e-7,
/// as the standard library's), `2^n` written into the exponent bits. Below -87.3 (under
/// f32's normal range) it is 0, above 88.4 it saturates at 2^127 * e^r, and NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.336_55, 88.376_26);
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // The integer `n` sits in the low bits of `shifted` (a float cast would not vectorise).
    let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let two_to_n = f32::from_bits((n_bits.wrapping_add(127) as u32) << 23);
    let value = if x < -87.336_55 { 0.0 } else { e_r * two_to_n };
    if x.is_nan() { x } else { value }
}

/// Sum of `values`, in [`LANES`] interleaved partial sums.
#[inline]
pub fn sum(values: &[f32]) -> f32 {
    reduce(values, 0.0, |a, b| a + b)
}

/// Largest of `values` (NaN-ignoring, as `f32::max`); -inf when empty.
#[inline]
pub fn max(values: &[f32]) -> f32 {
    reduce(values, f32::NEG_INFINITY, f32::max)
}

/// `sum(a * b)`, in [`LANES`] interleaved partial sums.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_body, b_body) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_tail, b_tail) = (a_body.remainder(), b_body.remainder());
    for (a, b) in a_body.zip(b_body) {
        for i in 0..LANES {
            lanes[i] += a[i] * b[i];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(a, b)| a * b).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `sum((x - center)^2)`, in [`LANES`] interleaved partial sums.
#[inline]
pub fn squared_deviations(values: &[f32], center: f32) -> f32 {
    fold(values, 0.0, |total, x| total + (x - center) * (x - center), |a, b| a + b)
}

#[inline(always)]
fn reduce(values: &[f32], identity: f32, combine: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    fold(values, identity, combine, combine)
}

/// `step` folds each value into one of [`LANES`] interleaved accumulators, `combine` joins
/// the accumulators: independent chains the compiler turns into vector operations.
#[inline(always)]
fn fold(values: &[f32], identity: f32, step: impl Fn(f32, f32) -> f32, combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [identity; LANES];
    let body = values.chunks_exact(LANES);
    let tail = body.remainder();
    for chunk in body {
        for i in 0..LANES {
            lanes[i] = step(lanes[i], chunk[i]);
        }
    }
    let folded = lanes.into_iter().fold(identity, &combine);
    tail.iter().fold(folded, |total, &x| step(total, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorisable `exp` against the standard library's over f32's whole useful range:
    /// within 2 units in the last place, 0 below the normal range, NaN kept.
    #[test]
    fn exp_equals_the_standard_librarys_to_two_ulp() {
        let mut x = -87.0f32;
        while x < 88.3 {
            let (got, expected) = (exp(x), x.exp());
            let ulp = (expected.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {got}, std gives {expected} ({ulp} ulp apart)");
            x += 0.013_7;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1.0e9), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    /// Every number of every output is written once, by the task that owns it, and the
    /// tasks' results come back in order; a length that is not a multiple of the block and
    /// an empty output work too.
    #[test]
    fn par_blocks_covers_every_number_once_in_task_order() {
        for (len, block) in [(0, 4), (1, 4), (10, 4), (12, 4), (1000, 7)] {
            let ([squares, starts], lengths) = par_blocks(len, block, |start, [squares, starts]: [&mut [f32]; 2]| {
                assert!(squares.iter().chain(starts.iter()).all(|&x| x == 0.0), "handed over zeroed");
                for (i, (square, first)) in squares.iter_mut().zip(starts.iter_mut()).enumerate() {
                    *square = ((start + i) * (start + i)) as f32;
                    *first = start as f32;
                }
                (start, squares.len())
            });
            let expected_squares: Vec<f32> = (0..len).map(|i| (i * i) as f32).collect();
            let expected_starts: Vec<f32> = (0..len).map(|i| (i / block * block) as f32).collect();
            let expected_lengths: Vec<(usize, usize)> =
                (0..len.div_ceil(block)).map(|t| (t * block, block.min(len - t * block))).collect();
            assert_eq!((squares, starts, lengths), (expected_squares, expected_starts, expected_lengths), "{len} in {block}");
        }
    }

    /// The AVX2 loop of [`zip_into`] gives the baseline loop's numbers, bit for bit, for a
    /// function with `exp` and a division (GELU's tanh form as a sigmoid).
    #[test]
    fn zip_into_gives_the_baseline_numbers_bit_for_bit() {
        let x: Vec<f32> = (0..1003).map(|i| ((i * 7919) % 2003) as f32 / 97.0 - 10.0).collect();
        let other: Vec<f32> = x.iter().map(|v| 0.5 - v / 7.0).collect();
        let f = |x: f32, o: f32| o * x / (1.0 + exp(-1.595_769_2 * (x + 0.044_715 * x * x * x)));
        let (mut chosen, mut baseline) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
        zip_into(&mut chosen, &x, &other, &f);
        zip_each(&mut baseline, &x, &other, &f);
        let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&chosen), bits(&baseline));
    }

    #[test]
    fn the_reductions_equal_plain_loops() {
        let values: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0).collect();
        let other: Vec<f32> = (0..37).map(|i| ((i * 104_729) % 89) as f32 / 20.0).collect();
        for len in [0, 1, 7, 8, 9, 37] {
            let (v, o) = (&values[..len], &other[..len]);
            let plain_sum: f64 = v.iter().map(|&x| x as f64).sum();
            let plain_dot: f64 = v.iter().zip(o).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((sum(v) as f64 - plain_sum).abs() < 1e-4, "sum of {len}");
            assert!((dot(v, o) as f64 - plain_dot).abs() < 1e-3, "dot of {len}");
            assert_eq!(max(v), v.iter().copied().fold(f32::NEG_INFINITY, f32::max), "max of {len}");
        }
    }

    /// Inside `without_subnormals` a product below f32's normal range is 0 and a subnormal
    /// input counts as 0; outside it, before and after, both are the subnormal numbers IEEE
    /// arithmetic gives (the setting is restored).
    #[test]
    fn subnormals_are_zero_inside_without_subnormals_alone() {
        use std::hint::black_box;
        let (small, factor, subnormal) = (black_box(1e-30f32), black_box(1e-10f32), black_box(1e-40f32));
        let outside = || (black_box(small) * black_box(factor), black_box(subnormal) * black_box(1.0f32));
        let before = outside();
        assert!(before.0 > 0.0 && !before.0.is_normal() && before.1 == 1e-40, "{before:?}");
        let inside = without_subnormals(outside);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(inside, (0.0, 0.0));
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(inside, before);
        assert_eq!(outside(), before, "the setting is restored");
    }
}
