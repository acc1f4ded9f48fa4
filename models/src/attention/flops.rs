//! The work of a layer in floating-point operations, for model FLOPs utilisation (MFU).
//!
//! Counted: the matrix products a forward pass computes, 2 operations per multiply-add,
//! as the layer computes them (blocks, padding to whole blocks, discarded parts
//! included). Not counted: element-wise work (softmax, masks, norms, activations,
//! sums), lookups and sorting. A training step costs three forward passes: the backward
//! of a product `A B` is two products of the same size, `dA = dC B^T` and `dB = A^T dC`.
//! Each mechanism file states its own count beside its forward (`forward_flops`).

/// The sizes one attention layer's work depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerShape {
    pub batch: usize,
    /// Positions the layer sees, the CLS vector included.
    pub positions: usize,
    pub d_model: usize,
    /// Attention width: queries, keys and values over all heads.
    pub qkv_dim: usize,
    pub heads: usize,
    /// Leading positions (the CLS vector) that attend and are attended globally, where the
    /// mechanism treats them so (axial, Sparse).
    pub leading: usize,
}

impl LayerShape {
    pub fn n(&self) -> f64 {
        self.positions as f64
    }

    pub fn d_head(&self) -> f64 {
        (self.qkv_dim / self.heads.max(1)) as f64
    }

    /// `count` products `[m, k] x [k, n]` per example of the batch: `2 batch count m k n`.
    pub fn products(&self, count: f64, m: f64, k: f64, n: f64) -> f64 {
        2.0 * self.batch as f64 * count * m * k * n
    }

    /// The query, key, value and output projections (`HeadProjections`) of `rows`
    /// positions: four products `[rows, d_model] x [d_model, qkv_dim]`.
    pub fn projections(&self, rows: f64) -> f64 {
        self.products(4.0, rows, self.d_model as f64, self.qkv_dim as f64)
    }

    /// Softmax attention of `queries` rows over `keys` keys each, every head: the scores
    /// `q k^T` and the context `w v`, `4 batch queries keys qkv_dim`.
    pub fn attend(&self, queries: f64, keys: f64) -> f64 {
        self.products(2.0, queries, self.qkv_dim as f64, keys)
    }

    /// Linear attention of `rows` queries through `features` features per head, every
    /// head: `phi(K)^T V` and `phi(Q) (phi(K)^T V)`, `4 batch rows features qkv_dim`.
    pub fn linear_attend(&self, rows: f64, features: f64) -> f64 {
        self.products(2.0, rows, features, self.qkv_dim as f64)
    }

    /// The leading positions' part of a pattern that starts after them: the leading
    /// rows over every key, and every other row over the leading keys.
    pub fn leading_rows(&self) -> f64 {
        let lead = self.leading.min(self.positions) as f64;
        if lead == 0.0 {
            return 0.0;
        }
        self.attend(lead, self.n()) + self.attend(self.n() - lead, lead)
    }

    /// Positions of the pattern after the leading ones.
    pub fn after_leading(&self) -> usize {
        self.positions - self.leading.min(self.positions)
    }
}
