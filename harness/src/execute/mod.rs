//! The execution layer: one run or one measurement in this process, on a device (the only
//! layer besides `models` that runs burn), and the data export. It writes what the records
//! layer defines.

pub mod bench_cell;
pub mod device;
pub mod export;
pub mod memory;
pub mod run;
pub mod train;
