//! `lra gpu-check`: the device and sizes from the command line, handed to
//! [`crate::orchestrate::gpu_check`]; prints the summary it writes.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::args::GpuCheckArgs;
use crate::orchestrate::gpu_check::{self, GpuCheckSpec, Sizes, refuse_cpu};
use crate::orchestrate::sweep::current_exe;
use crate::records::gpu_check::summary_paths;

/// Exit code of a check that opened the device but measured nothing (no benchmark cell,
/// no run): the summary says why.
pub const EXIT_NOTHING_MEASURED: u8 = 1;

pub fn gpu_check(args: &GpuCheckArgs) -> anyhow::Result<ExitCode> {
    // Before anything is written: a CPU device or one that cannot be opened is an error.
    refuse_cpu(args.device)?;
    let device = crate::execute::device::open(args.device).map_err(anyhow::Error::msg)?;
    // An --out that cannot be written is found now, not after an hour of measurements.
    std::fs::create_dir_all(&args.out).with_context(|| format!("--out {}: creating the folder", args.out.display()))?;
    let spec = GpuCheckSpec {
        device: args.device,
        out: args.out.clone(),
        data: args.data.clone(),
        sizes: if args.smoke { Sizes::smoke() } else { Sizes::full() },
        cell_timeout: Duration::from_secs_f64(args.cell_timeout),
        run_timeout: Duration::from_secs_f64(args.run_timeout),
    };
    let command = std::iter::once("lra".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ");
    let checked = gpu_check::run(&current_exe()?, &spec, &device, command)?;
    let (json, markdown) = summary_paths(&args.out);
    print!("{}", checked.markdown);
    eprintln!("gpu-check: written {} and {}", markdown.display(), json.display());
    if !checked.measured_anything {
        eprintln!("gpu-check: nothing could be measured on {} (see the summary)", args.device);
        return Ok(ExitCode::from(EXIT_NOTHING_MEASURED));
    }
    Ok(ExitCode::SUCCESS)
}
