//! A deterministic simulated venue and in-memory trading node for tests, dry-runs, examples and benchmarks.
