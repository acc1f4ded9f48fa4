//! `summary.md` of `lra gpu-check`, and the benchmark rows of its `summary.json`, from the
//! records alone: the device, the step benchmark beside LRA's Table 2 ([`super::table2`]),
//! the two runs and the projected sweep.

use std::fmt::Write as _;

use super::format::{Table, bytes_label};
use super::published;
use super::table2::speed_table;
use crate::records::bench_record::BenchRecord;
use crate::records::gpu_check::{BenchRow, GpuCheckSummary, RunSummary};

/// The rows of `summary.json`'s benchmark: one per measured cell, LRA's published figure
/// beside it where Table 2 has the model and the length.
pub fn bench_rows(record: &BenchRecord) -> Vec<BenchRow> {
    record
        .measurements
        .iter()
        .map(|m| {
            let column = published::TABLE2_LENGTHS.iter().position(|&l| l == m.length);
            let row = published::speed_of(&m.label()).filter(|_| m.variant() != Some(lra_models::Variant::Paper));
            let at = |figures: [f64; 4]| column.map(|i| figures[i]);
            BenchRow {
                model: m.label(),
                length: m.length,
                status: m.failure.as_ref().map_or_else(|| "ok".to_string(), |f| f.to_string()),
                steps_per_second: m.steps_per_second,
                peak_memory_bytes: m.peak_memory_bytes,
                mfu: m.utilisation.mfu,
                published_steps_per_second: row.and_then(|p| at(p.steps_per_second)),
                published_memory_gb: row.and_then(|p| at(p.memory_gb)),
            }
        })
        .collect()
}

/// `summary.md`: what a person reads of the check (`bench`: the benchmark's record, for
/// its table).
pub fn markdown(summary: &GpuCheckSummary, bench: Option<&BenchRecord>) -> String {
    let mut out = format!("# GPU check: {} (`{}`)\n\n", summary.device.adapter, summary.device.name);
    if summary.smoke {
        out.push_str(
            "**Smoke sizes** (`--smoke`): tiny lengths, batch and runs, a test of the command; these figures say \
             nothing of the device.\n\n",
        );
    }
    let e = &summary.environment;
    let peak = match &e.peak {
        Some(peak) => peak.derivation.clone(),
        None => "not known for this adapter: no MFU".into(),
    };
    let rows = [
        ("device", format!("`{}` (backend {})", summary.device.name, summary.device.backend)),
        ("adapter", summary.device.adapter.clone()),
        ("driver", summary.device.driver.clone()),
        ("peak f32 rate", peak),
        ("build features", e.build_features.join(", ")),
        ("machine", format!("{}, {} cores, {} memory, {}", e.cpu, e.cores, bytes_label(e.memory_bytes), e.os)),
        ("binary", format!("commit {}, lra {}, burn {}", e.git_commit, e.lra_version, e.burn_version)),
        ("command", format!("`{}`", summary.command)),
        ("check took", duration(summary.wall_seconds)),
    ];
    let table = Table {
        header: vec!["part".into(), "what".into()],
        rows: rows.into_iter().map(|(k, v)| vec![k.to_string(), v]).collect(),
        titles: Vec::new(),
    };
    let _ = write!(out, "## Device and driver\n\n{}\n", table.markdown());

    let b = &summary.bench;
    let _ = writeln!(out, "## Training steps per model and length (LRA's Table 2), batch {}\n", b.batch);
    match (bench, &b.error) {
        (_, Some(error)) => {
            let _ = writeln!(out, "The benchmark could not run: {error}\n");
        }
        (Some(record), None) => {
            let _ = writeln!(out, "{}", speed_table(record).markdown());
            for row in b.rows.iter().filter(|r| r.status != "ok") {
                let _ = writeln!(out, "- {} at length {}: {}", row.model, row.length, row.status);
            }
            let _ = writeln!(out, "\nRecord: `{}`.\n", b.record.as_deref().unwrap_or("–"));
        }
        (None, None) => out.push_str("Not run.\n\n"),
    }

    let _ = writeln!(out, "## A quick ListOps run\n\n{}", run_table(&summary.quick_run).markdown());
    let short = &summary.short_run;
    let _ = writeln!(
        out,
        "## ListOps at preset {}, cut to {} steps\n\nCut from the preset's {} steps, so its accuracy means nothing; \
         its speed is what the projection below scales.\n\n{}",
        short.preset,
        short.steps,
        short.preset_steps,
        run_table(short).markdown()
    );

    match &summary.projection {
        Some(p) => {
            let _ = writeln!(
                out,
                "## Projected time of a full `lra sweep --preset {}`\n\n**{}** for {} runs (a projection, not a \
                 measurement).\n",
                p.preset,
                duration(p.seconds),
                p.runs
            );
            let table = Table {
                header: ["task", "runs", "training steps", "projected time"].map(String::from).to_vec(),
                rows: p
                    .per_task
                    .iter()
                    .map(|t| vec![t.task.clone(), t.runs.to_string(), t.steps.to_string(), duration(t.seconds)])
                    .collect(),
                titles: Vec::new(),
            };
            let _ = writeln!(
                out,
                "{}\nHow: {}. The reference ran {:.3} steps/s at {:.3e} FLOPs per step.",
                table.markdown(),
                p.method,
                p.reference_steps_per_second,
                p.reference_step_flops
            );
        }
        None => {
            let _ = writeln!(
                out,
                "## Projected time of a full sweep\n\nNot projected: the shortened run measured no speed ({}).",
                short.status
            );
        }
    }
    out
}

/// One run as a table row.
fn run_table(run: &RunSummary) -> Table {
    let figure = |value: Option<f64>, digits: usize| value.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"));
    Table {
        header: ["run", "status", "test accuracy", "training steps/s", "peak memory", "time", "record"]
            .map(String::from)
            .to_vec(),
        rows: vec![vec![
            format!("{} {} (preset {}, {} steps)", run.task, run.model, run.preset, run.steps),
            run.status.clone(),
            figure(run.test_accuracy, 4),
            figure(run.train_steps_per_second, 3),
            run.peak_memory_bytes.map_or_else(|| "–".to_string(), bytes_label),
            run.wall_seconds.map_or_else(|| "–".to_string(), duration),
            run.record.as_ref().map_or_else(|| "–".to_string(), |r| format!("`{r}`")),
        ]],
        titles: Vec::new(),
    }
}

/// Seconds in the unit a person reads them in: `42 s`, `12.5 min`, `3.2 h`, `4.1 days`.
pub fn duration(seconds: f64) -> String {
    match seconds {
        s if !s.is_finite() => "–".into(),
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s if s < 2.0 * 86400.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::bench_record::{CellSpec, Scope, failed_cell, step_record};
    use crate::records::device_name::DeviceName;
    use crate::records::run_record::Failure;
    use lra_models::Variant;

    #[test]
    fn durations_are_in_the_unit_a_person_reads() {
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(750.0), "12.5 min");
        assert_eq!(duration(3.25 * 3600.0), "3.2 h");
        assert_eq!(duration(4.0 * 86400.0), "4.0 days");
        assert_eq!(duration(f64::NAN), "–");
    }

    /// A cell's row carries LRA's figure at the same model and length (Local Attention at
    /// 2K: 8.4 steps/s in 0.76 GB), none at a length Table 2 has not, and a failed cell
    /// its failure in words.
    #[test]
    fn bench_rows_stand_beside_lras_figure_at_the_same_length() {
        let cell = |model: &str, length: usize| CellSpec {
            model: model.into(),
            variant: Variant::Lra,
            length,
            batch: 32,
            device: DeviceName::Wgpu(None),
            scope: Scope::Step,
            warmup_steps: 1,
            timed_steps: 3,
        };
        let mut measured = failed_cell(&cell("local", 2048), Failure::NotRun { reason: "x".into() });
        measured.failure = None;
        measured.steps_per_second = Some(3.0);
        measured.peak_memory_bytes = Some(1 << 30);
        let timed_out = failed_cell(&cell("transformer", 4096), Failure::TimedOut { seconds: 600.0 });
        let odd = failed_cell(&cell("performer", 100), Failure::NotRun { reason: "budget".into() });
        let rows = bench_rows(&step_record("b", vec![100, 2048, 4096], vec![measured, timed_out, odd]));
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].status.as_str(), rows[0].steps_per_second), ("ok", Some(3.0)));
        assert_eq!((rows[0].published_steps_per_second, rows[0].published_memory_gb), (Some(8.4), Some(0.76)));
        assert_eq!(rows[1].status, "timed out: after 600 s");
        assert_eq!((rows[1].published_steps_per_second, rows[1].published_memory_gb), (Some(1.4), Some(9.48)));
        assert_eq!((rows[2].published_steps_per_second, rows[2].published_memory_gb), (None, None));
    }

    /// At LRA's lengths the summary's table has LRA's row under ours (the Transformer at
    /// 1K: 8.1 steps/s in 0.85 GB), a failed cell is listed with its failure, each run has
    /// its row, and the projection is called one, with its total.
    #[test]
    fn a_summary_at_lras_lengths_shows_lras_figures_and_every_part() {
        use crate::records::environment::capture;
        use crate::records::gpu_check::{BenchSummary, DeviceReport, Projection};
        let spec = |model: &str, length: usize| CellSpec {
            model: model.into(),
            variant: Variant::Lra,
            length,
            batch: 32,
            device: DeviceName::Cuda(0),
            scope: Scope::Step,
            warmup_steps: 1,
            timed_steps: 3,
        };
        let mut ok = failed_cell(&spec("transformer", 1024), Failure::NotRun { reason: "x".into() });
        ok.failure = None;
        ok.steps_per_second = Some(20.0);
        ok.peak_memory_bytes = Some(3 << 29);
        let oom = failed_cell(&spec("transformer", 4096), Failure::OutOfMemory { detail: "CUDA_ERROR_OUT_OF_MEMORY".into() });
        let record = step_record("gpu-check-step-cuda0-b32", vec![1024, 4096], vec![ok, oom]);
        let run = |preset: &str, steps: usize, status: &str| RunSummary {
            task: "listops".into(),
            model: "transformer".into(),
            preset: preset.into(),
            steps,
            preset_steps: 5000,
            run_id: Some("abc".into()),
            record: Some("r/runs/abc/result.json".into()),
            status: status.into(),
            test_accuracy: Some(0.375),
            train_steps_per_second: Some(12.5),
            peak_memory_bytes: Some(1 << 30),
            wall_seconds: Some(90.0),
        };
        let summary = GpuCheckSummary {
            smoke: false,
            command: "lra gpu-check --device cuda".into(),
            device: DeviceReport {
                name: "cuda".into(),
                backend: "cuda".into(),
                adapter: "NVIDIA H100 80GB HBM3".into(),
                driver: "NVIDIA driver 550.54.15".into(),
            },
            environment: capture("NVIDIA H100 80GB HBM3", None, None),
            bench: BenchSummary {
                bench_id: Some(record.bench_id.clone()),
                record: Some("r/bench/gpu-check-step-cuda0-b32.json".into()),
                lengths: vec![1024, 4096],
                batch: 32,
                rows: bench_rows(&record),
                error: None,
            },
            quick_run: run("quick", 5000, "ok"),
            short_run: run("lra", 300, "ok"),
            projection: Some(Projection {
                preset: "lra".into(),
                runs: 140,
                reference: "listops transformer (preset lra, 300 steps)".into(),
                reference_steps_per_second: 12.5,
                reference_step_flops: 1e12,
                seconds: 3.0 * 86400.0,
                per_task: Vec::new(),
                method: "a projection, not a measurement: ...".into(),
            }),
            wall_seconds: 1800.0,
        };
        let text = markdown(&summary, Some(&record));
        assert!(text.starts_with("# GPU check: NVIDIA H100 80GB HBM3 (`cuda`)\n"), "{text}");
        assert!(!text.contains("Smoke sizes"), "{text}");
        assert!(text.contains("| transformer (ours) | 20.000 | FAIL"), "{text}");
        assert!(text.contains("| Transformer (published, LRA Table 2, TPU v3) | 8.1 | 1.4 | 0.85 GB | 9.48 GB |"), "{text}");
        assert!(text.contains("- transformer at length 4096: out of memory: CUDA_ERROR_OUT_OF_MEMORY"), "{text}");
        assert!(
            text.contains("| listops transformer (preset lra, 300 steps) | ok | 0.3750 | 12.500 | 1.00 GiB | 90 s |"),
            "{text}"
        );
        assert!(text.contains("Cut from the preset's 5000 steps"), "{text}");
        assert!(text.contains("**3.0 days** for 140 runs (a projection, not a measurement)"), "{text}");
    }
}
