//! Built-in trading shutdown steps: halt, cancel, verify, close.
