//! Table 2: steps per second, peak memory and MFU of each benchmark, beside LRA's.

use super::format::{Table, bytes_label, ours};
use super::published;
use crate::records::bench_record::{BenchRecord, Scope};

/// Table 2 of one benchmark: speed, memory and MFU per model and length, LRA's published
/// row under each model it has.
pub(super) fn speed_table(bench: &BenchRecord) -> Table {
    let mut header = vec!["Model".to_string()];
    for l in &bench.lengths {
        header.push(format!("steps/s {}", length_label(*l)));
    }
    for l in &bench.lengths {
        header.push(format!("memory {}", length_label(*l)));
    }
    for l in &bench.lengths {
        header.push(format!("MFU {}", length_label(*l)));
    }
    let mut models: Vec<String> = Vec::new();
    for m in &bench.measurements {
        if !models.contains(&m.label()) {
            models.push(m.label());
        }
    }
    let mut rows = Vec::new();
    for model in &models {
        let model = model.as_str();
        let find = |l: usize| bench.measurements.iter().find(|m| m.label() == model && m.length == l);
        let mut row = vec![ours(model)];
        for &l in &bench.lengths {
            row.push(match find(l) {
                Some(m) => match (m.steps_per_second, m.relative_speed) {
                    (Some(s), Some(r)) if model != lra_models::BASELINE => format!("{s:.3} ({r:.2}x)"),
                    (Some(s), _) => format!("{s:.3}"),
                    _ => m.failed_cell(),
                },
                None => "–".into(),
            });
        }
        for &l in &bench.lengths {
            row.push(match find(l) {
                Some(m) => match (m.peak_memory_bytes, m.relative_memory) {
                    (Some(b), Some(r)) if model != lra_models::BASELINE => format!("{} ({r:.2}x)", bytes_label(b)),
                    (Some(b), _) => bytes_label(b),
                    _ => m.failed_cell(),
                },
                None => "–".into(),
            });
        }
        for &l in &bench.lengths {
            row.push(find(l).and_then(|m| m.utilisation.mfu).map(|u| format!("{:.1}%", 100.0 * u)).unwrap_or_else(|| "–".into()));
        }
        rows.push(row);
        if bench.scope == Scope::Step
            && let Some(p) = published::speed_of(model)
        {
            let mut row = vec![format!("{} (published, LRA Table 2, TPU v3)", p.row)];
            // LRA's column of `l` and the ratios to its Transformer there (none for the baseline).
            let published_at = |l: usize| {
                let i = published::TABLE2_LENGTHS.iter().position(|&x| x == l)?;
                Some((i, published::relative(model, l).filter(|_| model != lra_models::BASELINE)))
            };
            for &l in &bench.lengths {
                row.push(match published_at(l) {
                    Some((i, Some((r, _)))) => format!("{} ({r:.1}x)", p.steps_per_second[i]),
                    Some((i, None)) => format!("{}", p.steps_per_second[i]),
                    None => "–".into(),
                });
            }
            for &l in &bench.lengths {
                row.push(match published_at(l) {
                    Some((i, Some((_, r)))) => format!("{} GB ({r:.2}x)", p.memory_gb[i]),
                    Some((i, None)) => format!("{} GB", p.memory_gb[i]),
                    None => "–".into(),
                });
            }
            row.extend(bench.lengths.iter().map(|_| "–".to_string()));
            rows.push(row);
        }
    }
    Table { header, rows, titles: Vec::new() }
}

fn length_label(length: usize) -> String {
    if length.is_multiple_of(1024) { format!("{}K", length / 1024) } else { length.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::bench_record::{Measurement, cell_settings, step_record};
    use crate::records::machine::Utilisation;
    use lra_models::Variant;

    fn measured(model: &str, steps_per_second: f64, relative_speed: f64) -> Measurement {
        Measurement {
            model: model.into(),
            attention: cell_settings(model, Variant::Lra, 1025).ok(),
            length: 1024,
            failure: None,
            step_seconds: Some(1.0 / steps_per_second),
            steps_per_second: Some(steps_per_second),
            tokens_per_second: None,
            peak_memory_bytes: Some(512 << 20),
            memory_source: None,
            relative_speed: Some(relative_speed),
            relative_memory: Some(1.0),
            utilisation: Utilisation::default(),
        }
    }

    /// A model measured in LRA's form gets LRA's published row under it, as the Transformer
    /// does: Local Attention at 1K ran 9.2 steps/s in 0.42 GB, 9.2 / 8.1 = 1.1x the
    /// Transformer's speed and 0.42 / 0.85 = 0.49x its memory.
    #[test]
    fn every_model_with_a_published_row_shows_it_under_its_own() {
        let bench = step_record("b", vec![1024], vec![measured("transformer", 2.0, 1.0), measured("local", 3.0, 1.5)]);
        let rows: Vec<Vec<String>> = speed_table(&bench).rows;
        let firsts: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
        assert_eq!(
            firsts,
            [
                "transformer (ours)",
                "Transformer (published, LRA Table 2, TPU v3)",
                "local (as LRA ran it; ours)",
                "Local Attention (published, LRA Table 2, TPU v3)"
            ]
        );
        assert_eq!(rows[2][1..], ["3.000 (1.50x)", "512.0 MiB (1.00x)", "–"]);
        assert_eq!(rows[3][1..], ["9.2 (1.1x)", "0.42 GB (0.49x)", "–"]);
    }

    /// A software renderer's times are the CPU's: its table gives memory ratios, and no
    /// speed ratio, where a GPU's gives both.
    #[test]
    fn a_software_rendered_benchmark_relates_memory_but_not_time() {
        use crate::records::bench_record::relate_to_transformer;
        for software_rendered in [false, true] {
            let mut cells = vec![measured("transformer", 2.0, 0.0), measured("local", 3.0, 0.0)];
            cells[1].peak_memory_bytes = Some(256 << 20);
            relate_to_transformer(&mut cells, software_rendered);
            assert_eq!(cells[1].relative_memory, Some(0.5));
            assert_eq!(cells[1].relative_speed, (!software_rendered).then_some(1.5));
            let rows = speed_table(&step_record("b", vec![1024], cells)).rows;
            let expected_speed = if software_rendered { "3.000" } else { "3.000 (1.50x)" };
            assert_eq!(rows[2][1..3], [expected_speed, "256.0 MiB (0.50x)"]);
        }
    }
}
