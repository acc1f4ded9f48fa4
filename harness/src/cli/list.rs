//! `lra list models|tasks|presets|devices`.

use lra_tasks::{Preset, Task, TaskConfig};

use crate::cli::args::ListWhat;

pub fn list(what: ListWhat) -> anyhow::Result<()> {
    match what {
        ListWhat::Models => {
            // Columns as wide as their longest entry; costs, some with long notes, end the line.
            let width = |column: fn(&lra_models::ModelInfo) -> &str| {
                lra_models::MODELS.iter().map(|m| column(m).chars().count()).max().unwrap_or(0)
            };
            let (name, family, title) = (width(|m| m.name), width(|m| m.family), width(|m| m.title));
            println!("{:<name$}  {:<family$}  {:<11}  {:<title$}  cost per layer", "name", "family", "variants", "model");
            for m in lra_models::MODELS {
                // Where the paper and LRA's released code differ, both forms exist; `lra` is
                // every preset's.
                let variants = match m.mechanism.has_variants() {
                    true => lra_models::Variant::ALL.map(lra_models::Variant::name).join(", "),
                    false => "one form".to_string(),
                };
                println!("{:<name$}  {:<family$}  {:<11}  {:<title$}  {}", m.name, m.family, variants, m.title, m.cost);
            }
        }
        ListWhat::Tasks => {
            println!("{:<10} {:>7} {:>6} {:>8}  what (lra preset sizes)", "name", "length", "vocab", "classes");
            for task in Task::ALL {
                let c = TaskConfig::resolve(task, Preset::Lra);
                println!("{:<10} {:>7} {:>6} {:>8}  {}", task.name(), c.max_length, c.vocab_size, c.classes, task.describe());
                let quick = TaskConfig::resolve(task, Preset::Quick);
                println!("{:<10} {:>7} {:>6} {:>8}  quick: {}", "", quick.max_length, "", "", task.cpu_form());
            }
        }
        ListWhat::Presets => {
            for preset in Preset::ALL {
                println!("{:<6} {}", preset.name(), preset.describe());
            }
        }
        ListWhat::Devices => {
            for line in crate::execute::device::describe_all() {
                println!("{line}");
            }
        }
    }
    Ok(())
}
