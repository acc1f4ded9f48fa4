//! The records layer: what the results folder holds (a run's `config.json`, `result.json`
//! and `metrics.csv`, the benchmark's records, claims) and how it is written. It depends
//! on no other layer of the harness: FLOP counts come from the configuration, the
//! environment from the operating system, never from training.

pub mod bench_record;
pub mod chance;
pub mod claim;
pub mod device_name;
pub mod environment;
pub mod files;
pub mod gpu_check;
pub mod machine;
pub mod run_config;
pub mod run_record;
