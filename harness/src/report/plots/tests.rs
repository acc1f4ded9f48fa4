//! The plots' tests: what each figure shows and where it puts it.

use super::curves::*;
use super::draw::*;
use super::figure3::*;
use super::figure3::{Mark, Rect};
use crate::report::load::Run;
use proptest::prelude::*;

/// Every label placed, inside the plot, clear of every other label, of its own bubble
/// and of every bubble's centre.
fn assert_legible(marks: &[Mark], bounds: Rect) {
    let places = place_labels(marks, bounds);
    let placed: Vec<Rect> = places.iter().map(|p| p.expect("every label has a place")).collect();
    for (i, (a, mark)) in placed.iter().zip(marks).enumerate() {
        assert!(bounds.contains(a), "label {i} at {a:?} leaves the plot {bounds:?}");
        assert!(a.distance(mark.centre) >= mark.radius, "label {i} covers its bubble");
        for (j, b) in placed.iter().enumerate().skip(i + 1) {
            assert!(!a.intersects(b), "labels {i} {a:?} and {j} {b:?} overlap");
        }
        for (j, m) in marks.iter().enumerate() {
            assert!(a.distance(m.centre) > DOT_RADIUS, "label {i} covers bubble {j}'s centre");
        }
    }
}

/// Figure 3's plot area, as its chart lays it out in the figure's size.
const PLOT: Rect = Rect { left: 75.0, top: 50.0, width: 1010.0, height: 505.0 };

/// Bubbles placed as Figure 3 places them in [`PLOT`], labelled as it labels them.
fn marks_of(bubbles: &[Bubble]) -> Vec<Mark> {
    let speeds: Vec<f64> = bubbles.iter().map(|b| b.speed.log10()).collect();
    let (lo, hi) = speeds.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let pad = ((hi - lo) * 0.07).max(0.05);
    let (acc_lo, acc_hi) = bubbles.iter().fold((f64::MAX, f64::MIN), |(lo, hi), b| (lo.min(b.accuracy), hi.max(b.accuracy)));
    let acc_pad = ((acc_hi - acc_lo) * 0.15).max(2.0);
    let max_memory = bubbles.iter().map(|b| b.memory).fold(1.0, f64::max);
    bubbles
        .iter()
        .map(|b| {
            let x = PLOT.left + PLOT.width * (b.speed.log10() - lo + pad) / (hi - lo + 2.0 * pad);
            let y = PLOT.bottom() - PLOT.height * (b.accuracy - acc_lo + acc_pad) / (acc_hi - acc_lo + 2.0 * acc_pad);
            let (width, height) = text_size(&b.label(), LABEL_FONT);
            Mark {
                centre: (x, y),
                radius: bubble_radius(b.memory, max_memory),
                label: (width + 2.0 * LABEL_PAD, height + 2.0 * LABEL_PAD),
            }
        })
        .collect()
}

/// The 25 models and the control, both forms of the models with two: Figure 3 of a
/// sweep of every form.
fn every_model() -> Vec<String> {
    let mut labels = Vec::new();
    for m in lra_models::MODELS.iter() {
        if m.mechanism.has_variants() {
            for variant in [lra_models::Variant::Lra, lra_models::Variant::Paper] {
                labels.push(crate::records::run_record::model_label(m.name, Some(variant)));
            }
        } else {
            labels.push(m.name.to_string());
        }
    }
    labels
}

/// The crowd of the example report's Figure 3 (25 models and the control between 0.25
/// and 0.35 steps per second and 20 and 30%), one far to the right, stretching the axis:
/// every label finds a place of its own.
#[test]
fn figure3_labels_never_overlap_in_a_crowd() {
    let models = every_model();
    let n = models.len() as f64;
    let mut bubbles: Vec<Bubble> = models
        .iter()
        .enumerate()
        .map(|(i, model)| Bubble {
            model: model.clone(),
            speed: 0.25 + 0.1 * (i as f64 * 0.618).fract(),
            accuracy: 20.0 + 10.0 * (i as f64 / n),
            memory: 2e8 + 3e9 * (i as f64 * 0.382).fract(),
        })
        .collect();
    bubbles[3].speed = 4.4;
    assert!(bubbles.len() >= 26);
    assert_legible(&marks_of(&bubbles), PLOT);
    // Every bubble at one point.
    for b in &mut bubbles {
        (b.speed, b.accuracy) = (0.3, 25.0);
    }
    assert_legible(&marks_of(&bubbles), PLOT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any 26 bubbles within a small part of the plot.
    #[test]
    fn labels_of_any_crowd_never_overlap(
        points in proptest::collection::vec((0.0..200.0f64, 0.0..120.0f64, 5.0..35.0f64, 40.0..190.0f64), 26),
    ) {
        let marks: Vec<Mark> = points
            .iter()
            .map(|&(x, y, radius, width)| Mark { centre: (400.0 + x, 200.0 + y), radius, label: (width, 18.0) })
            .collect();
        assert_legible(&marks, PLOT);
    }
}

#[test]
fn the_speed_axis_is_ticked_at_round_values() {
    let labels = |lo, hi| speed_ticks(lo, hi).into_iter().map(tick_label).collect::<Vec<_>>();
    assert_eq!(labels(0.08, 5.0), ["0.1", "0.2", "0.5", "1", "2", "5"]);
    assert_eq!(labels(0.25, 0.8), ["0.3", "0.4", "0.5", "0.7"]);
    // Within a factor of 3, evenly spaced.
    assert_eq!(labels(0.251, 0.349), ["0.26", "0.28", "0.3", "0.32", "0.34"]);
    assert_eq!(labels(6.2, 18.0), ["8", "10", "12", "14", "16", "18"]);
}

/// Every contender in one panel of its family, the baseline and the control in none
/// (every panel draws them), no more panels than a 3 x 3 grid, and the models of a panel
/// apart by colour (a model's two forms by line).
#[test]
fn the_curves_have_a_panel_per_family_with_distinct_styles() {
    let labels = every_model();
    let grouped = panels(&labels);
    assert!(grouped.len() <= 9, "{grouped:#?}");
    for label in &labels {
        let holding = grouped.iter().filter(|p| p.models.contains(label)).count();
        let shared = matches!(crate::records::run_record::model_of_label(label), lra_models::BASELINE | lra_models::CONTROL);
        assert_eq!(holding, if shared { 0 } else { 1 }, "{label}");
    }
    for panel in &grouped {
        let styles: Vec<Style> = panel.models.iter().map(|m| panel.style(m)).collect();
        for (i, a) in styles.iter().enumerate() {
            assert!(*a != BASELINE_STYLE && *a != CONTROL_STYLE);
            for b in &styles[i + 1..] {
                assert_ne!(a, b, "{panel:?}");
            }
        }
    }
    assert_eq!(panels(&[lra_models::BASELINE.to_string()]).len(), 1, "the baseline alone has a panel");
}

/// The curves of every model and form, with the baseline's three seeds, fill one grid
/// of panels as tall as its layout says; Figure 3 draws the crowd.
#[test]
fn every_model_is_drawn_in_the_curves_and_in_figure3() {
    use crate::records::run_record::{Failure, MetricsRow, RunRecord};
    let resolve = |model: &str, seed: u64| {
        crate::records::run_config::RunConfig::resolve(
            lra_tasks::Task::Listops,
            lra_tasks::Preset::Tiny,
            model,
            seed,
            crate::records::device_name::DeviceName::Flex,
        )
        .unwrap()
    };
    let template = RunRecord::failed(&resolve(lra_models::BASELINE, 0), Failure::Crashed { detail: String::new() }, 0.0);
    let mut runs = Vec::new();
    for (i, label) in every_model().iter().enumerate() {
        let model = crate::records::run_record::model_of_label(label);
        let seeds = if model == lra_models::BASELINE { 0..3 } else { 0..1 };
        for seed in seeds {
            let mut record = template.clone();
            record.model = model.to_string();
            record.config = resolve(model, seed);
            for variant in [lra_models::Variant::Lra, lra_models::Variant::Paper] {
                if label.ends_with(&format!("({})", variant.label())) {
                    record.config = record.config.with_variant(variant).unwrap();
                }
            }
            assert_eq!(record.model_label(), *label);
            (record.outcome.failure, record.outcome.validation_majority_rate) = (None, Some(0.1));
            record.outcome.left_chance_step = (i % 2 == 0).then_some(10);
            let metrics = (1..=20)
                .map(|step| MetricsRow {
                    step,
                    loss: 2.5 - 0.02 * step as f64,
                    lr: 1e-3,
                    train_acc: 0.2,
                    examples_per_s: 100.0,
                    val_acc: (step % 5 == 0).then(|| 0.1 + 0.01 * (step + i) as f64),
                })
                .collect();
            runs.push(Run { record, metrics });
        }
    }
    let shown: Vec<&Run> = runs.iter().collect();
    let figure = curves(lra_tasks::Task::Listops, &shown).unwrap();
    let layout = CurvesLayout::new(&runs);
    assert_eq!((layout.columns, layout.rows), (3, layout.panels.len().div_ceil(3)));
    let size = png::Decoder::new(std::io::Cursor::new(&figure.png)).read_info().unwrap().info().size();
    assert_eq!(size, (WIDTH, layout.height()));
    assert!(figure.svg.contains("first validation step above chance"));

    let bubbles: Vec<Bubble> = every_model()
        .into_iter()
        .enumerate()
        .map(|(i, model)| Bubble { model, speed: 0.25 + 0.004 * i as f64, accuracy: 25.0 + 0.2 * i as f64, memory: 1e8 })
        .collect();
    let figure = render(&Figure3 { bubbles: &bubbles, x_label: &String::from("speed") }, (WIDTH, FIGURE3_HEIGHT)).unwrap();
    assert!(figure.svg.contains("bag (control)"));
}

#[test]
fn a_key_flows_onto_the_next_line_when_full() {
    assert_eq!(flow(&[50.0, 50.0, 50.0], 130.0), [(0, 0.0), (0, 50.0 + KEY_GAP), (1, 0.0)]);
    assert_eq!(flow(&[500.0], 130.0), [(0, 0.0)], "an entry wider than the line has one of its own");
}

#[test]
fn every_registered_model_has_a_style_of_its_own() {
    let styles: Vec<Style> = lra_models::MODELS.iter().map(|m| style_of(m.name)).collect();
    for (i, a) in styles.iter().enumerate() {
        for b in &styles[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

/// Every model in both its forms fits the legend's column, at the largest font that
/// lets it.
#[test]
fn the_legend_fits_every_model_in_every_form() {
    let rows = lra_models::MODELS.len() + lra_models::MODELS.iter().filter(|m| m.mechanism.has_variants()).count();
    let (spacing, font) = legend_rows(rows);
    assert!(LEGEND_TOP as u32 + spacing * (rows as u32 - 1) + font <= HEIGHT, "{rows} rows of {spacing}");
    assert_eq!(legend_rows(16), (22, 15), "a few entries keep the full size");
}

#[test]
fn smoothing_starts_at_the_first_value_and_follows_the_trend() {
    let points = [(1.0, 2.0), (2.0, 0.0), (3.0, 0.0)];
    assert_eq!(smoothed(&points, 0.5), vec![(1.0, 2.0), (2.0, 1.0), (3.0, 0.5)]);
    assert_eq!(fitted(0.0, 10.0, 0.1, 1.0), (-1.0, 11.0));
}
