//! `shutdownctl`, the operator binary.
fn main() {}
