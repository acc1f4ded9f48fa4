//! The orchestration layer: many runs or measurements, each in a child process (`lra run`,
//! `lra bench-cell`), on this machine or as a Slurm array; what a child could not record
//! (a crash, a kill, a time-out) is recorded here.

pub mod bench;
pub mod child;
pub mod gpu_check;
pub mod slurm;
pub mod sweep;
