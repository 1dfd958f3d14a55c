//! `nautilus_shutdown._native`: the Rust half of the `nautilus_shutdown` Python package. The
//! pipeline, its runner, steps, report, metrics and exit codes are the workspace's own; only the
//! node roles speak Python, through an adapter whose coroutines run on the node's event loop.

// Link the crates whose steps register themselves.
extern crate shutdown_redis as _;
extern crate shutdown_steps as _;

mod bridge;
mod handler;
mod logging;
mod roles;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    ConfigError,
    pyo3::exceptions::PyValueError,
    "A configuration that cannot run: every problem, each naming where it is."
);

/// Validate the TOML text of a pipeline; `origin` names it in errors. Raises `ConfigError` with
/// every problem at once.
#[pyfunction]
fn check_config(text: &str, origin: &str) -> PyResult<()> {
    handler::parse_config(text, origin).map(drop)
}

/// The registered step kinds, sorted.
#[pyfunction]
fn step_kinds() -> PyResult<Vec<String>> {
    let registry =
        shutdown_core::Registry::global().map_err(|e| ConfigError::new_err(e.to_string()))?;
    Ok(registry
        .kind_names()
        .into_iter()
        .map(str::to_owned)
        .collect())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<handler::Handler>()?;
    m.add_function(wrap_pyfunction!(check_config, m)?)?;
    m.add_function(wrap_pyfunction!(step_kinds, m)?)?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
