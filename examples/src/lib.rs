//! Shared parts of the example programs: a custom step (`notify`) and a toy market-making strategy.

pub mod notify;
pub mod strategy;
