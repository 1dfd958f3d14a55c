//! Integration tests: real `testnode` processes, real signals, reports on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod grace;
mod signals;
mod support;
