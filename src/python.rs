//! The pyo3 layer: a thin native class that the Python `CrossEncoder`
//! wraps. Argument forms, activations and progress bars live in Python.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;

use crate::engine::{CrossEncoder, LoadOptions};
use crate::error::Error;
use crate::models::SUPPORTED_MODEL_TYPES;

fn to_py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        Error::InvalidModel(_) | Error::Io { .. } | Error::Hub(_) => PyOSError::new_err(msg),
        Error::UnsupportedModel { .. } | Error::InvalidInput(_) | Error::Tokenizer(_) => {
            PyValueError::new_err(msg)
        }
        Error::Interrupted => PyKeyboardInterrupt::new_err(msg),
        Error::Tensor(_) => PyRuntimeError::new_err(msg),
    }
}

/// Runs core work with the GIL released, turning errors into Python
/// exceptions and panics into `RuntimeError` (never a crash).
fn run_detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(work)));
    match outcome {
        Ok(result) => result.map_err(to_py_err),
        Err(panic) => Err(panic_error(panic)),
    }
}

fn panic_error(panic: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    PyRuntimeError::new_err(format!("crossrank internal error: {what}"))
}

/// The native model. Use `crossrank.CrossEncoder`.
#[pyclass(frozen, name = "NativeCrossEncoder", module = "crossrank._crossrank")]
struct NativeCrossEncoder {
    inner: CrossEncoder,
}

#[pymethods]
impl NativeCrossEncoder {
    #[new]
    #[pyo3(signature = (path, num_labels=None, max_length=None, config_overrides=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        num_labels: Option<usize>,
        max_length: Option<usize>,
        config_overrides: Option<String>,
    ) -> PyResult<Self> {
        let config_overrides = config_overrides
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("config_kwargs: {e}")))?;
        let options = LoadOptions {
            num_labels,
            max_length,
            config_overrides,
        };
        let inner = run_detached(py, || CrossEncoder::from_dir(&path, &options))?;
        Ok(Self { inner })
    }

    /// Raw logits, float32 `(len(pairs), num_labels)`, in input order.
    /// `progress(done, total)` is called after each batch; an exception it
    /// raises (or Ctrl-C) stops the call.
    #[pyo3(signature = (pairs, batch_size=32, progress=None))]
    fn predict_logits<'py>(
        &self,
        py: Python<'py>,
        pairs: Vec<(String, String)>,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let mut stop_reason: Option<PyErr> = None;
        let labels = self.inner.num_labels();
        let n = pairs.len();
        let result = run_detached(py, || {
            let mut on_batch = |done: usize, total: usize| {
                Python::attach(|py| {
                    let outcome = py.check_signals().and_then(|_| match &progress {
                        Some(cb) => cb.call1(py, (done, total)).map(drop),
                        None => Ok(()),
                    });
                    outcome.map_err(|e| stop_reason = Some(e)).is_ok()
                })
            };
            self.inner.predict_logits(&pairs, batch_size, &mut on_batch)
        });
        let logits = match (result, stop_reason) {
            (_, Some(err)) => return Err(err),
            (result, None) => result?,
        };
        let array = Array2::from_shape_vec((n, labels), logits)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(array.into_pyarray(py))
    }

    #[getter]
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }

    #[getter]
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    #[setter]
    fn set_max_length(&self, value: usize) -> PyResult<()> {
        self.inner.set_max_length(value).map_err(to_py_err)
    }

    #[getter]
    fn max_positions(&self) -> usize {
        self.inner.max_positions()
    }

    #[getter]
    fn model_type(&self) -> &str {
        &self.inner.config.model_type
    }

    /// config.json (with any overrides) as a JSON string.
    #[getter]
    fn config_json(&self) -> String {
        self.inner.config.raw.to_string()
    }

    #[getter]
    fn default_activation(&self) -> String {
        self.inner.default_activation()
    }

    #[getter]
    fn num_layers(&self) -> usize {
        self.inner.num_layers()
    }

    #[getter]
    fn hidden_size(&self) -> usize {
        self.inner.hidden_size()
    }

    #[getter]
    fn source(&self) -> PathBuf {
        self.inner.source.clone()
    }

    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }

    /// tokenizer.json of the tokenizer in use (truncation included).
    fn tokenizer_json(&self) -> PyResult<String> {
        self.inner.tokenizer().to_json().map_err(to_py_err)
    }

    /// Token ids and type ids for pairs, as the model sees them.
    fn tokenize(
        &self,
        py: Python<'_>,
        pairs: Vec<(String, String)>,
    ) -> PyResult<Vec<(Vec<u32>, Vec<u32>)>> {
        let encoded = run_detached(py, || self.inner.tokenizer().encode_pairs(&pairs))?;
        Ok(encoded.into_iter().map(|e| (e.ids, e.type_ids)).collect())
    }
}

#[pymodule]
fn _crossrank(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeCrossEncoder>()?;
    m.add("SUPPORTED_MODEL_TYPES", SUPPORTED_MODEL_TYPES.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
