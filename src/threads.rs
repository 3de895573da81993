//! The thread budget: how many compute threads a call gets.
//!
//! First an explicit count (a model's own, then the process-wide one set by
//! [`set_process_threads`]), then `CROSSRANK_NUM_THREADS`, then
//! `OMP_NUM_THREADS` (PyTorch's variable; Ray and Spark set it for their
//! workers from the CPUs they give them), then the CPUs this process may run
//! on: its affinity mask and its cgroup CPU quota, as
//! [`std::thread::available_parallelism`] reads them, not the machine's cores.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variables read, in order.
pub const THREAD_VARIABLES: [&str; 2] = ["CROSSRANK_NUM_THREADS", "OMP_NUM_THREADS"];

/// The process-wide count; 0 = none set.
static PROCESS_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Where a budget came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Given for this model or call.
    Explicit,
    /// Set for the whole process ([`set_process_threads`]).
    Process,
    /// One of [`THREAD_VARIABLES`].
    Environment(&'static str),
    /// The CPUs this process may use.
    AvailableCpus,
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Explicit => "num_threads".into(),
            Source::Process => "set_num_threads".into(),
            Source::Environment(name) => (*name).into(),
            Source::AvailableCpus => "available CPUs".into(),
        }
    }
}

/// A resolved budget, with the environment values that were not numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub threads: usize,
    pub source: Source,
    /// Messages for variables set to something that is not a thread count
    /// (ignored, as OpenMP ignores them).
    pub ignored: Vec<String>,
}

/// Sets (or with `None` clears) the count every call of this process uses
/// unless its model has its own.
pub fn set_process_threads(threads: Option<usize>) {
    PROCESS_THREADS.store(threads.unwrap_or(0), Ordering::Relaxed);
}

/// The budget for a call whose model asks for `explicit` threads (if any).
pub fn resolve(explicit: Option<usize>) -> Budget {
    resolve_with(explicit, |name| std::env::var(name).ok())
}

fn resolve_with(explicit: Option<usize>, env: impl Fn(&str) -> Option<String>) -> Budget {
    let mut ignored = Vec::new();
    let found = |threads, source| Budget {
        threads,
        source,
        ignored: Vec::new(),
    };
    if let Some(threads) = explicit.filter(|&n| n > 0) {
        return found(threads, Source::Explicit);
    }
    let process = PROCESS_THREADS.load(Ordering::Relaxed);
    if process > 0 {
        return found(process, Source::Process);
    }
    for name in THREAD_VARIABLES {
        let Some(value) = env(name) else { continue };
        match parse_count(&value) {
            Some(threads) => {
                return Budget {
                    threads,
                    source: Source::Environment(name),
                    ignored,
                }
            }
            None if value.trim().is_empty() => {}
            None => ignored.push(format!(
                "{name}={value:?} is not a positive thread count; ignored"
            )),
        }
    }
    Budget {
        threads: available_cpus(),
        source: Source::AvailableCpus,
        ignored,
    }
}

/// A positive count; OpenMP's nested form "4,2" gives its outer level.
fn parse_count(value: &str) -> Option<usize> {
    let outer = value.split(',').next()?.trim();
    outer.parse::<usize>().ok().filter(|&n| n > 0)
}

/// The CPUs this process may run on (affinity and cgroup quota).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn explicit_then_crossrank_then_omp_then_cpus() {
        let both = [("CROSSRANK_NUM_THREADS", "3"), ("OMP_NUM_THREADS", "5")];
        assert_eq!(resolve_with(Some(7), env(&both)).threads, 7);
        let from_ours = resolve_with(None, env(&both));
        assert_eq!(from_ours.threads, 3);
        assert_eq!(
            from_ours.source,
            Source::Environment("CROSSRANK_NUM_THREADS")
        );
        let omp = resolve_with(None, env(&[("OMP_NUM_THREADS", "5")]));
        assert_eq!(
            (omp.threads, omp.source),
            (5, Source::Environment("OMP_NUM_THREADS"))
        );
        let none = resolve_with(None, env(&[]));
        assert_eq!(
            (none.threads, none.source),
            (available_cpus(), Source::AvailableCpus)
        );
    }

    #[test]
    fn odd_values_are_ignored_and_reported() {
        let bad = resolve_with(
            None,
            env(&[("CROSSRANK_NUM_THREADS", "many"), ("OMP_NUM_THREADS", "0")]),
        );
        assert_eq!(bad.source, Source::AvailableCpus);
        assert_eq!(bad.ignored.len(), 2, "{:?}", bad.ignored);
        assert!(bad.ignored[0].contains("CROSSRANK_NUM_THREADS=\"many\""));
        let nested = resolve_with(None, env(&[("OMP_NUM_THREADS", " 4,2 ")]));
        assert_eq!(nested.threads, 4);
        let empty = resolve_with(None, env(&[("OMP_NUM_THREADS", "")]));
        assert!(empty.ignored.is_empty());
        assert_eq!(
            resolve_with(Some(0), env(&[])).source,
            Source::AvailableCpus
        );
    }
}
