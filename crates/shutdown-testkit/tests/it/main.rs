//! Integration tests: real `testnode` processes, real signals, reports on disk.

mod signals;
mod support;
