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

#[cfg(test)]
mod tests {
    use crate::attention::bigbird::BigBirdSettings;
    use crate::attention::full::FullSettings;
    use crate::attention::linformer::LinformerSettings;
    use crate::attention::local::LocalSettings;
    use crate::attention::{AttentionConfig, Mechanism, MechanismSettings, Variant};

    fn layer(mechanism: Mechanism, settings: MechanismSettings) -> AttentionConfig {
        AttentionConfig::new(32, 4, mechanism, 48).with_settings(Some(settings))
    }

    /// Where a mechanism computes exactly full attention, it counts as full attention:
    /// one block of the whole length, every block global, the length projected to itself
    /// (by the same products plus the projection's own).
    #[test]
    fn mechanisms_in_their_full_attention_limit_count_as_full_attention() {
        let full = layer(Mechanism::Full, MechanismSettings::Full(FullSettings)).forward_flops(3);
        let local = layer(Mechanism::Local, MechanismSettings::Local(LocalSettings { variant: Variant::Paper, block_size: 48 }));
        assert_eq!(local.forward_flops(3), full);
        let bigbird = MechanismSettings::BigBird(BigBirdSettings {
            variant: Variant::Paper,
            block_size: 8,
            window_blocks: 3,
            global_blocks: 6,
            random_blocks: 1,
        });
        assert_eq!(layer(Mechanism::BigBird, bigbird).forward_flops(3), full);
        let linformer = layer(
            Mechanism::Linformer,
            MechanismSettings::Linformer(LinformerSettings { variant: Variant::Paper, projected_length: 48 }),
        );
        // Plus E K and E V: 2 x 3 x 2 x (48 x 48 x 32).
        assert_eq!(linformer.forward_flops(3), full + 2.0 * 3.0 * 2.0 * 48.0 * 48.0 * 32.0);
    }

    /// Counts grow as the papers' costs say: linear in the length for the linear-cost
    /// mechanisms (doubling the length doubles the count), quadratic for full attention.
    #[test]
    fn counts_scale_with_the_length_as_the_costs_say() {
        let at = |mechanism, n: usize| AttentionConfig::new(32, 4, mechanism, n).forward_flops(2);
        for mechanism in [Mechanism::Linear, Mechanism::Local] {
            let ratio = at(mechanism, 1024) / at(mechanism, 512);
            assert!((ratio - 2.0).abs() < 0.05, "{mechanism:?}: {ratio}");
        }
        let ratio = at(Mechanism::Full, 4096) / at(Mechanism::Full, 2048);
        assert!(ratio > 3.5 && ratio < 4.0, "{ratio}");
    }
}
