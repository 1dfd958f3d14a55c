//! Shared parts of the example programs: a custom step (`notify`) and a toy market-making strategy.

pub mod notify;
pub mod strategy;

/// The README and every guide, as doctests: a Rust snippet in them that stops compiling fails the
/// suite.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../../README.md")]
    struct Readme;
    #[doc = include_str!("../../docs/guide.md")]
    struct Guide;
    #[doc = include_str!("../../docs/config.md")]
    struct Config;
    #[doc = include_str!("../../docs/cli.md")]
    struct Cli;
    #[doc = include_str!("../../docs/operations.md")]
    struct Operations;
    #[doc = include_str!("../../docs/venues.md")]
    struct Venues;
}
