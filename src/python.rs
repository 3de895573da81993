//! The pyo3 layer: a thin native class that the Python `CrossEncoder`
//! wraps. Argument forms, activations and progress bars live in Python.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;

use crate::engine::{CrossEncoder, LoadOptions, Progress};
use crate::error::Error;
use crate::models::SUPPORTED_MODEL_TYPES;
use crate::ops::Precision;
use crate::threads;

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
/// The work runs in a rayon pool of this process (see [`PoolLease`]).
fn run_detached<T: Send>(
    py: Python<'_>,
    threads: usize,
    work: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<T> {
    let outcome =
        py.detach(|| catch_unwind(AssertUnwindSafe(|| PoolLease::take(threads).install(work))));
    match outcome {
        Ok(result) => result.map_err(to_py_err),
        Err(panic) => Err(panic_error(panic)),
    }
}

/// Idle rayon pools of this process, with the pid they belong to.
static IDLE_POOLS: Mutex<(u32, Vec<rayon::ThreadPool>)> = Mutex::new((0, Vec::new()));

/// Idle pools kept for later calls; more are shut down when returned.
const MAX_IDLE_POOLS: usize = 4;

/// A rayon pool of the call's thread budget (see [`crate::threads`]) for one
/// native call, handed back when the call ends.
///
/// Why not rayon's global pool: it does not survive `fork()`. The child
/// inherits the pool's bookkeeping but none of its threads, so the first
/// parallel call in a forked child (a `multiprocessing` "fork" worker of a
/// parent that already scored something) waits forever. Pools here are
/// keyed by pid: a forked child starts pools of its own.
///
/// Why a pool per concurrent call rather than one pool: a call runs as one
/// job in its pool, and rayon lets a busy pool's workers steal each other's
/// subtasks before they look at newly queued jobs, so a second call queued
/// into a busy pool would wait for the first to finish. With a pool each,
/// calls from several Python threads make progress side by side (a small
/// request is not stuck behind a large one). A single caller always gets
/// the same pool back.
struct PoolLease(Option<rayon::ThreadPool>);

impl PoolLease {
    fn take(threads: usize) -> Self {
        let pid = std::process::id();
        {
            let mut idle = IDLE_POOLS.lock().unwrap_or_else(|e| e.into_inner());
            if idle.0 != pid {
                // Pools inherited through fork: their threads do not exist in
                // this process and dropping them could wait on them: leak them.
                std::mem::forget(std::mem::take(&mut idle.1));
                idle.0 = pid;
            }
            let same_size = idle
                .1
                .iter()
                .rposition(|p| p.current_num_threads() == threads);
            if let Some(at) = same_size {
                return Self(Some(idle.1.swap_remove(at)));
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("crossrank-{i}"))
            .build()
            .unwrap_or_else(|e| panic!("cannot start crossrank's thread pool: {e}"));
        Self(Some(pool))
    }
}

impl std::ops::Deref for PoolLease {
    type Target = rayon::ThreadPool;

    fn deref(&self) -> &rayon::ThreadPool {
        self.0.as_ref().expect("a leased pool")
    }
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        let Some(pool) = self.0.take() else { return };
        let mut idle = IDLE_POOLS.lock().unwrap_or_else(|e| e.into_inner());
        if idle.0 != std::process::id() {
            std::mem::forget(pool); // leased before this process was forked: leak, as above
        } else if idle.1.len() < MAX_IDLE_POOLS {
            idle.1.push(pool);
        } else {
            drop(idle);
            drop(pool); // its threads exit
        }
    }
}

/// `NativeCrossEncoder(path, num_labels, max_length, config_overrides,
/// precision, num_threads)`.
type LoadArgs = (
    PathBuf,
    Option<usize>,
    usize,
    Option<String>,
    &'static str,
    Option<usize>,
);

/// Messages from a running `predict_logits` to the calling thread.
enum Event {
    /// After each batch: (batches done, batches in all).
    Progress(usize, usize),
}

/// How often the calling thread looks for Ctrl-C while a batch runs.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

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
    /// The load arguments, for pickling (`__reduce__` reloads from disk).
    path: PathBuf,
    num_labels: Option<usize>,
    config_overrides: Option<String>,
    /// This model's own thread budget; 0 = the process's.
    threads: AtomicUsize,
}

impl NativeCrossEncoder {
    fn own_threads(&self) -> Option<usize> {
        Some(self.threads.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }

    fn budget(&self) -> usize {
        threads::resolve(self.own_threads()).threads
    }
}

#[pymethods]
impl NativeCrossEncoder {
    #[new]
    #[pyo3(signature = (path, num_labels=None, max_length=None, config_overrides=None,
                        precision="float32", num_threads=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        num_labels: Option<usize>,
        max_length: Option<usize>,
        config_overrides: Option<String>,
        precision: &str,
        num_threads: Option<usize>,
    ) -> PyResult<Self> {
        let num_threads = check_thread_count(num_threads)?;
        let precision = Precision::from_name(precision).map_err(to_py_err)?;
        let overrides = config_overrides
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("config_kwargs: {e}")))?;
        let options = LoadOptions {
            num_labels,
            max_length,
            config_overrides: overrides,
            precision,
        };
        let inner = run_detached(py, threads::resolve(num_threads).threads, || {
            // At load time a tensor error means weights that do not fit the
            // config (a missing layer, a wrong shape): a broken model.
            CrossEncoder::from_dir(&path, &options).map_err(|e| match e {
                Error::Tensor(_) => Error::invalid_model(format!(
                    "cannot load the model in {}: {e}",
                    path.display()
                )),
                other => other,
            })
        })?;
        Ok(Self {
            inner,
            // Absolute, so that a pickle loads in a process with another cwd.
            path: std::path::absolute(&path).unwrap_or(path),
            num_labels,
            config_overrides,
            threads: AtomicUsize::new(num_threads.unwrap_or(0)),
        })
    }

    /// Pickles as "load it again from the same directory, same settings".
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, LoadArgs)> {
        let this = slf.get();
        let args = (
            this.path.clone(),
            this.num_labels,
            this.inner.max_length(),
            this.config_overrides.clone(),
            this.inner.precision().name(),
            this.own_threads(),
        );
        Ok((slf.get_type().into_any(), args))
    }

    /// Raw logits, float32 `(len(pairs), num_labels)`, in input order.
    /// `progress(done, total)` is called after each batch; an exception it
    /// raises (or Ctrl-C) stops the call after the batch in flight.
    /// `max_length`: this call's cut (None: the model's `max_length`).
    #[pyo3(signature = (pairs, batch_size=32, progress=None, max_length=None))]
    fn predict_logits<'py>(
        &self,
        py: Python<'py>,
        pairs: Vec<(String, String)>,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
        max_length: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let job = |model: &CrossEncoder, on_batch: Progress<'_>| {
            model.predict_logits(&pairs, max_length, batch_size, on_batch)
        };
        self.run_predict(py, pairs.len(), progress, &job)
    }

    /// Raw logits for texts a chat template rendered, each cut to
    /// `max_length` with the template's `suffix` restored where cut (see
    /// `predict_logits` for `progress`).
    #[pyo3(signature = (texts, suffix, batch_size=32, progress=None, max_length=None))]
    fn predict_rendered<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        suffix: Vec<u32>,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
        max_length: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let job = |model: &CrossEncoder, on_batch: Progress<'_>| {
            model.predict_rendered(&texts, &suffix, max_length, batch_size, on_batch)
        };
        self.run_predict(py, texts.len(), progress, &job)
    }

    /// Token ids of rendered texts as the model sees them (with `suffix`:
    /// cut to `max_length` and the suffix restored; without: whole).
    #[pyo3(signature = (texts, suffix=None, max_length=None))]
    fn tokenize_rendered(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        suffix: Option<Vec<u32>>,
        max_length: Option<usize>,
    ) -> PyResult<Vec<Vec<u32>>> {
        let max_length = self
            .inner
            .check_call_length(max_length)
            .map_err(to_py_err)?;
        let encoded = run_detached(py, self.budget(), || {
            self.inner
                .tokenizer()
                .encode_rendered(&texts, suffix.as_deref(), max_length)
        })?;
        Ok(encoded.into_iter().map(|e| e.ids).collect())
    }

    #[getter]
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }

    /// This model's own thread budget, or None to follow the process's.
    #[getter]
    fn num_threads(&self) -> Option<usize> {
        self.own_threads()
    }

    #[setter]
    fn set_num_threads(&self, value: Option<usize>) -> PyResult<()> {
        let value = check_thread_count(value)?;
        self.threads.store(value.unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }

    /// The threads this model's calls run on now.
    #[getter]
    fn threads_in_use(&self) -> usize {
        self.budget()
    }

    #[getter]
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    #[setter]
    fn set_max_length(&self, value: usize) -> PyResult<()> {
        self.inner.set_max_length(value).map_err(to_py_err)
    }

    /// The precision asked for at load: "float32", "bfloat16" or "int8".
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision().name()
    }

    /// The precision the dense layers really run at on this CPU.
    #[getter]
    fn effective_precision(&self) -> &'static str {
        self.inner.precision().effective().name()
    }

    /// The kernels the transformer layers' products run on, e.g. "int8 avx2".
    #[getter]
    fn kernels(&self) -> String {
        self.inner.kernels()
    }

    /// Bytes the transformer layers' dense weights take in memory.
    #[getter]
    fn dense_weight_bytes(&self) -> usize {
        self.inner.dense_weight_bytes()
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

    /// Token ids and type ids for pairs, as the model sees them (cut to
    /// `max_length`; None: the model's).
    #[pyo3(signature = (pairs, max_length=None))]
    fn tokenize(
        &self,
        py: Python<'_>,
        pairs: Vec<(String, String)>,
        max_length: Option<usize>,
    ) -> PyResult<Vec<(Vec<u32>, Vec<u32>)>> {
        let max_length = self
            .inner
            .check_call_length(max_length)
            .map_err(to_py_err)?;
        let encoded = run_detached(py, self.budget(), || {
            self.inner.tokenizer().encode_pairs(&pairs, max_length)
        })?;
        Ok(encoded.into_iter().map(|e| (e.ids, e.type_ids)).collect())
    }
}

/// A prediction run on the model: logits for its inputs, reporting batches.
type PredictJob<'a> = dyn Fn(&CrossEncoder, Progress<'_>) -> Result<Vec<f32>, Error> + Sync + 'a;

impl NativeCrossEncoder {
    /// Runs a prediction `job` in the process's pool with the GIL released;
    /// the calling thread stays free to run the `progress` callback and to
    /// look for Ctrl-C (Python runs signal handlers on the main thread only).
    /// Returns `(n, num_labels)` float32 logits.
    fn run_predict<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        progress: Option<Py<PyAny>>,
        job: &PredictJob<'_>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let labels = self.inner.num_labels();
        let mut stop_reason: Option<PyErr> = None;
        let outcome = py.detach(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let stop = AtomicBool::new(false);
                let (events, received) = mpsc::channel::<Event>();
                let mut result: Option<Result<Vec<f32>, Error>> = None;
                let slot = &mut result;
                let (inner, stop_flag) = (&self.inner, &stop);
                PoolLease::take(self.budget()).in_place_scope(|scope| {
                    scope.spawn(move |_| {
                        let mut on_batch = |done: usize, total: usize| {
                            // The receiver lives until the scope ends.
                            let _ = events.send(Event::Progress(done, total));
                            !stop_flag.load(Ordering::Relaxed)
                        };
                        *slot = Some(job(inner, &mut on_batch));
                    });
                    // The calling thread: callbacks and signals, until the
                    // job drops its sender.
                    loop {
                        let event = match received.recv_timeout(SIGNAL_POLL) {
                            Ok(event) => Some(event),
                            Err(mpsc::RecvTimeoutError::Timeout) => None,
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        };
                        if stop_reason.is_some() {
                            continue; // stopping: wait for the batch in flight
                        }
                        let outcome = Python::attach(|py| {
                            py.check_signals()?;
                            match (&event, &progress) {
                                (Some(Event::Progress(done, total)), Some(cb)) => {
                                    cb.call1(py, (*done, *total)).map(drop)
                                }
                                _ => Ok(()),
                            }
                        });
                        if let Err(err) = outcome {
                            stop_reason = Some(err);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                });
                result
            }))
        });
        if let Some(err) = stop_reason {
            return Err(err);
        }
        let logits = match outcome {
            Ok(Some(result)) => result.map_err(to_py_err)?,
            Ok(None) => {
                return Err(PyRuntimeError::new_err(
                    "crossrank internal error: no result",
                ))
            }
            Err(panic) => return Err(panic_error(panic)),
        };
        let array = Array2::from_shape_vec((n, labels), logits)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(array.into_pyarray(py))
    }
}

#[pymodule]
fn _crossrank(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeCrossEncoder>()?;
    m.add("SUPPORTED_MODEL_TYPES", SUPPORTED_MODEL_TYPES.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(hub_resolve, m)?)?;
    m.add_function(wrap_pyfunction!(runnable_isas, m)?)?;
    m.add_function(wrap_pyfunction!(active_isa, m)?)?;
    m.add_function(wrap_pyfunction!(release_memory, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(thread_budget, m)?)?;
    m.add("PRECISIONS", Precision::NAMES.to_vec())?;
    Ok(())
}

/// The instruction-set paths this CPU can run ("scalar", "avx2", "avx512",
/// "amx"), whatever `CROSSRANK_ISA` says.
#[pyfunction]
fn runnable_isas() -> Vec<&'static str> {
    crate::ops::simd::runnable_isas()
        .into_iter()
        .map(|isa| isa.name())
        .collect()
}

/// The path kernels take in this process (`CROSSRANK_ISA` applied).
#[pyfunction]
fn active_isa() -> &'static str {
    crate::ops::simd::active_isa().name()
}

fn check_thread_count(threads: Option<usize>) -> PyResult<Option<usize>> {
    match threads {
        Some(0) => Err(PyValueError::new_err(
            "num_threads must be at least 1 (or None for the default)",
        )),
        other => Ok(other),
    }
}

/// Sets the threads every model of this process uses unless it has its own
/// `num_threads`; None goes back to the environment and the available CPUs.
#[pyfunction]
#[pyo3(signature = (num_threads))]
fn set_num_threads(num_threads: Option<usize>) -> PyResult<()> {
    threads::set_process_threads(check_thread_count(num_threads)?);
    Ok(())
}

/// The process's thread budget: `(threads, where it came from, messages for
/// environment values that were ignored)`.
#[pyfunction]
fn thread_budget() -> (usize, String, Vec<String>) {
    let budget = threads::resolve(None);
    (budget.threads, budget.source.describe(), budget.ignored)
}

/// Gives free memory the process still holds back to the system (large
/// buffers kept for reuse between calls, free heap pages).
#[pyfunction]
fn release_memory(py: Python<'_>) {
    py.detach(crate::alloc::release_memory)
}

/// Download progress for `hub_resolve`, on the calling thread: for a file of
/// at least `min_bytes`, `factory(filename, total_bytes)` makes a bar
/// (`update(n)`, `close()`, as `tqdm` has). Ctrl-C, or an exception from the
/// bar, stops the download.
struct PyDownloadProgress<'a> {
    factory: Option<Py<PyAny>>,
    min_bytes: u64,
    bar: Option<Py<PyAny>>,
    stop_reason: &'a mut Option<PyErr>,
}

impl PyDownloadProgress<'_> {
    fn keep_going(&mut self, outcome: PyResult<()>) -> bool {
        match outcome {
            Ok(()) => true,
            Err(err) => {
                self.stop_reason.get_or_insert(err);
                false
            }
        }
    }
}

impl crate::hub::DownloadProgress for PyDownloadProgress<'_> {
    fn start(&mut self, file: &str, size: u64) -> bool {
        let outcome = Python::attach(|py| {
            py.check_signals()?;
            if let (Some(factory), true) = (&self.factory, size >= self.min_bytes) {
                self.bar = Some(factory.call1(py, (file, size))?);
            }
            Ok(())
        });
        self.keep_going(outcome)
    }

    fn advance(&mut self, bytes: u64) -> bool {
        let outcome = Python::attach(|py| {
            py.check_signals()?;
            match &self.bar {
                Some(bar) => bar.call_method1(py, "update", (bytes,)).map(drop),
                None => Ok(()),
            }
        });
        self.keep_going(outcome)
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            // A bar that fails to close is not worth failing a download for.
            Python::attach(|py| drop(bar.call_method0(py, "close")));
        }
    }
}

/// Resolves a Hugging Face Hub model id to its snapshot directory in the
/// hub cache, downloading the files the model needs (see `crate::hub`).
/// `token`: None (HF_TOKEN or the saved token), True (the same, required),
/// False (none) or the token. Returns `(directory, repo_id, commit,
/// warnings)`.
///
/// Runs on the calling thread with the GIL released (not in the compute
/// pool), so that Ctrl-C is seen while a file downloads.
#[pyfunction]
#[pyo3(signature = (model_id, cache_dir=None, revision=None, token=None,
                    local_files_only=false, progress=None, progress_min_bytes=0))]
#[allow(clippy::too_many_arguments)]
fn hub_resolve(
    py: Python<'_>,
    model_id: String,
    cache_dir: Option<PathBuf>,
    revision: Option<String>,
    token: Option<Bound<'_, PyAny>>,
    local_files_only: bool,
    progress: Option<Py<PyAny>>,
    progress_min_bytes: u64,
) -> PyResult<(PathBuf, String, String, Vec<String>)> {
    use crate::hub::{HubOptions, Token};
    let token = match token {
        None => Token::Auto,
        Some(t) if t.is_instance_of::<pyo3::types::PyBool>() => {
            if t.extract::<bool>()? {
                Token::Required
            } else {
                Token::Disabled
            }
        }
        Some(t) => Token::Value(t.extract::<String>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err("token must be a str, a bool or None")
        })?),
    };
    let options = HubOptions {
        cache_dir,
        revision,
        token,
        local_files_only,
        endpoint: None,
    };
    let mut stop_reason: Option<PyErr> = None;
    let outcome = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| {
            let mut reporter = PyDownloadProgress {
                factory: progress,
                min_bytes: progress_min_bytes,
                bar: None,
                stop_reason: &mut stop_reason,
            };
            crate::hub::resolve(&model_id, &options, Some(&mut reporter))
        }))
    });
    if let Some(err) = stop_reason {
        return Err(err);
    }
    let resolved = match outcome {
        Ok(result) => result.map_err(to_py_err)?,
        Err(panic) => return Err(panic_error(panic)),
    };
    Ok((
        resolved.dir,
        resolved.repo_id,
        resolved.commit,
        resolved.warnings,
    ))
}
