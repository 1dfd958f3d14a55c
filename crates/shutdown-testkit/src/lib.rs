//! Test steps.
