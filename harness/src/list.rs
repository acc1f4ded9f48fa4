//! `lra list models|tasks|presets|devices`.

use lra_tasks::{Preset, Task, TaskConfig};

use crate::cli::ListWhat;

pub fn list(what: ListWhat) -> anyhow::Result<()> {
    match what {
        ListWhat::Models => {
            println!("{:<14} {:<28} {:<36} {:<11} model", "name", "family", "cost per layer", "variants");
            for m in lra_models::MODELS {
                // Where the paper and LRA's released code differ, both forms exist; `lra` is
                // every preset's.
                let variants = match m.mechanism.has_variants() {
                    true => lra_models::Variant::ALL.map(lra_models::Variant::name).join(", "),
                    false => "one form".to_string(),
                };
                println!("{:<14} {:<28} {:<36} {:<11} {}", m.name, m.family, m.cost, variants, m.title);
            }
        }
        ListWhat::Tasks => {
            println!("{:<10} {:>7} {:>6} {:>8}  what (lra preset sizes)", "name", "length", "vocab", "classes");
            for task in Task::ALL {
                let c = TaskConfig::resolve(task, Preset::Lra);
                println!("{:<10} {:>7} {:>6} {:>8}  {}", task.name(), c.max_length, c.vocab_size, c.classes, task.describe());
            }
        }
        ListWhat::Presets => {
            for preset in Preset::ALL {
                println!("{:<6} {}", preset.name(), preset.describe());
            }
        }
        ListWhat::Devices => {
            for line in crate::device::describe_all() {
                println!("{line}");
            }
        }
    }
    Ok(())
}
