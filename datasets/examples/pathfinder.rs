//! Generates Pathfinder images: a preview sheet, or a timed full-size dataset.
//!
//! ```text
//! cargo run --release -p lra-datasets --example pathfinder -- preview 32 14 out.png [count] [seed]
//! cargo run --release -p lra-datasets --example pathfinder -- time 32 14 200000 [seed]
//! ```

use std::time::Instant;

use lra_datasets::pathfinder::{self, Difficulty, PathfinderConfig};

fn difficulty(name: &str) -> Result<Difficulty, String> {
    match name {
        "6" | "baseline" => Ok(Difficulty::Baseline),
        "9" => Ok(Difficulty::Nine),
        "14" => Ok(Difficulty::Fourteen),
        other => Err(format!("difficulty `{other}`: expected baseline (6), 9 or 14")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: pathfinder preview SIZE DIFFICULTY OUT.png [COUNT] [SEED] | time SIZE DIFFICULTY COUNT [SEED]";
    let (Some(mode), Some(size), Some(level)) = (args.first(), args.get(1), args.get(2)) else {
        return Err(usage.into());
    };
    let config = PathfinderConfig::lra(size.parse()?, difficulty(level)?)?;
    match mode.as_str() {
        "preview" => {
            let out = args.get(3).ok_or(usage)?;
            let count: u64 = args.get(4).map_or(Ok(24), |s| s.parse())?;
            let seed: u64 = args.get(5).map_or(Ok(0), |s| s.parse())?;
            let samples = pathfinder::generate(&config, seed, count)?;
            let png = pathfinder::preview_png(samples.iter().map(|s| (s.pixels.as_slice(), s.label)), config.size, 6, 2)?;
            std::fs::write(out, png)?;
            println!("wrote {out}: {count} images of size {}", config.size);
        }
        "time" => {
            let count: u64 = args.get(3).ok_or(usage)?.parse()?;
            let seed: u64 = args.get(4).map_or(Ok(0), |s| s.parse())?;
            let threads = lra_datasets::parallel::available_threads();
            let start = Instant::now();
            let images = pathfinder::generate_images(&config, seed, count)?;
            let seconds = start.elapsed().as_secs_f64();
            let positives = images.iter().filter(|(_, label)| *label == 1).count();
            println!(
                "{count} images of size {} (contour length {}) in {seconds:.2} s on {threads} threads \
                 ({:.0} images/s); label 1: {:.2}%",
                config.size,
                config.contour_length,
                count as f64 / seconds,
                100.0 * positives as f64 / count as f64
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
