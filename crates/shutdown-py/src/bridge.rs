//! The bridge to the node's event loop. Each role call runs a coroutine of the Python adapter on
//! the node's asyncio loop, the only thread that touches Nautilus objects, and a tokio task awaits
//! its answer: JSON text in the shapes of `shutdown_core::domain`.

use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3_async_runtimes::TaskLocals;
use serde::de::DeserializeOwned;
use shutdown_core::errors::RoleError;
use shutdown_core::node::RoleResult;

/// The Python adapter of one node, and the event loop its coroutines run on.
pub(crate) struct Bridge {
    adapter: Py<PyAny>,
    /// The loop of the first run: set when the shutdown starts, on that loop.
    locals: OnceLock<TaskLocals>,
}

impl Bridge {
    pub(crate) fn new(adapter: Py<PyAny>) -> Self {
        Self {
            adapter,
            locals: OnceLock::new(),
        }
    }

    /// Run role calls on this loop from now on (the first loop given stays).
    pub(crate) fn bind_loop(&self, locals: TaskLocals) {
        let _ = self.locals.set(locals);
    }

    /// Call `method(*args)` of the adapter (a coroutine function) on the node's loop; its answer is
    /// JSON text, or `None`.
    pub(crate) async fn call(&self, method: &str, args: Vec<String>) -> RoleResult<Option<String>> {
        let pending = Python::attach(|py| {
            let locals = (self.locals.get())
                .ok_or_else(|| PyRuntimeError::new_err("the shutdown has not started on a loop"))?;
            let args = PyTuple::new(py, args)?;
            let coroutine = self.adapter.bind(py).call_method1(method, args)?;
            pyo3_async_runtimes::into_future_with_locals(locals, coroutine)
        });
        let answer = match pending {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        Python::attach(|py| match answer {
            Ok(value) => {
                (value.extract::<Option<String>>(py)).map_err(|e| role_error(py, method, &e))
            }
            Err(e) => Err(role_error(py, method, &e)),
        })
    }

    /// [`Bridge::call`], its answer read as a `T`.
    pub(crate) async fn ask<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<String>,
    ) -> RoleResult<T> {
        let answer = self.call(method, args).await?;
        let text = answer.as_deref().unwrap_or("null");
        serde_json::from_str(text).map_err(|e| {
            RoleError::Rejected(format!(
                "{method}: the node's answer cannot be read ({e}): {}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }
}

/// A Python exception as a role error: the adapter's own kinds say whether a retry may help
/// (`RoleTransient`, `RoleRateLimited`, `RoleRejected`, `RoleUnsupported`); anything else is a
/// rejection that names the exception.
fn role_error(py: Python<'_>, method: &str, e: &PyErr) -> RoleError {
    let kind = (e.get_type(py).name())
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let message = e.value(py).to_string();
    match kind.as_str() {
        "RoleTransient" => RoleError::Transient(message),
        "RoleRateLimited" => RoleError::RateLimited { retry_after: None },
        "RoleRejected" => RoleError::Rejected(message),
        "RoleUnsupported" => RoleError::Unsupported(message),
        "CancelledError" => {
            RoleError::Transient(format!("{method}: the event loop cancelled the call"))
        }
        _ => RoleError::Rejected(format!("{method} raised {kind}: {message}")),
    }
}
