"""The thread budget: the num_threads argument, set_num_threads, CROSSRANK_NUM_THREADS,
OMP_NUM_THREADS and the CPUs the process may use, checked by counting the compute threads
(named ``crossrank-<i>``) a fresh process really starts."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossrank
from crossrank import CrossEncoder

PAIRS = [("how many people live in berlin", "berlin has 3.5 million people " * (i + 1))
         for i in range(24)]

# Run in a fresh process: loads the model, scores, and reports what it saw. Compute threads
# are the process's threads named crossrank-<i> (idle pools keep theirs between calls).
CHILD = textwrap.dedent("""
    import json, os, sys
    affinity = os.environ.pop("TEST_AFFINITY", None)
    if affinity is not None:
        os.sched_setaffinity(0, {int(c) for c in affinity.split(",")})
    cgroup = os.environ.pop("TEST_CGROUP", None)
    if cgroup is not None:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    import crossrank
    model = crossrank.CrossEncoder(sys.argv[1], **json.loads(sys.argv[2]))
    scores = model.predict([("berlin people", "berlin has people " * 40)] * 64, batch_size=8)
    names = [open(f"/proc/self/task/{t}/comm").read().strip()
             for t in os.listdir("/proc/self/task")]
    print(json.dumps({
        "process": crossrank.get_num_threads(),
        "model": model.num_threads,
        "compute_threads": sum(name.startswith("crossrank-") for name in names),
        "scores": scores.tolist(),
    }))
""")


def run_child(model_dir: Path, env: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "CROSSRANK_NUM_THREADS", "RAYON_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), json.dumps(kwargs)],
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_omp_num_threads_is_honoured_as_pytorch_does(bert_dir: Path) -> None:
    seen = run_child(bert_dir, {"OMP_NUM_THREADS": "1"})
    assert (seen["process"], seen["model"], seen["compute_threads"]) == (1, 1, 1)


def test_crossrank_num_threads_comes_before_omp(bert_dir: Path) -> None:
    seen = run_child(bert_dir, {"OMP_NUM_THREADS": "1", "CROSSRANK_NUM_THREADS": "3"})
    assert (seen["process"], seen["compute_threads"]) == (3, 3)


def test_the_argument_comes_before_the_environment(bert_dir: Path) -> None:
    seen = run_child(bert_dir, {"OMP_NUM_THREADS": "3"}, num_threads=1)
    assert (seen["process"], seen["model"], seen["compute_threads"]) == (3, 1, 1)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and at least 2 CPUs to restrict")
def test_the_default_is_the_cpus_this_process_may_use(bert_dir: Path) -> None:
    one_cpu = str(min(os.sched_getaffinity(0)))
    seen = run_child(bert_dir, {"TEST_AFFINITY": one_cpu})
    assert (seen["process"], seen["compute_threads"]) == (1, 1)
    unrestricted = run_child(bert_dir, {})
    assert unrestricted["process"] == len(os.sched_getaffinity(0))


def one_cpu_cgroup() -> Path | None:
    """A cgroup (v1 cpu controller, or v2) whose quota is one CPU, if this process may
    make one (root in a container that lets it), else None."""
    for root, v2 in ((Path("/sys/fs/cgroup/cpu"), False), (Path("/sys/fs/cgroup"), True)):
        group = root / f"crossrank-test-{os.getpid()}"
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            if v2:
                (group / "cpu.max").write_text("100000 100000")
            else:
                (group / "cpu.cfs_period_us").write_text("100000")
                (group / "cpu.cfs_quota_us").write_text("100000")
            return group
        except OSError:
            group.rmdir()
    return None


def test_the_default_follows_the_cgroup_cpu_quota(bert_dir: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs at least 2 CPUs to limit to 1")
    group = one_cpu_cgroup()
    if group is None:
        pytest.skip("cannot make a cgroup with a CPU quota here (needs root and a "
                    "writable cpu controller)")
    try:
        seen = run_child(bert_dir, {"TEST_CGROUP": str(group)})
    finally:
        group.rmdir()
    assert (seen["process"], seen["compute_threads"]) == (1, 1)


def test_scores_do_not_depend_on_the_thread_count(bert_dir: Path) -> None:
    one = run_child(bert_dir, {}, num_threads=1)["scores"]
    three = run_child(bert_dir, {}, num_threads=3)["scores"]
    np.testing.assert_array_equal(one, three)


def test_set_num_threads_is_the_process_default(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir))
    own = CrossEncoder(str(bert_dir), num_threads=2)
    before = crossrank.get_num_threads()
    try:
        crossrank.set_num_threads(1)
        assert crossrank.get_num_threads() == 1
        assert model.num_threads == 1
        assert own.num_threads == 2  # its own budget comes first
        reference = model.predict(PAIRS)
        np.testing.assert_array_equal(own.predict(PAIRS), reference)
    finally:
        crossrank.set_num_threads(None)
    assert crossrank.get_num_threads() == before


def test_num_threads_can_be_changed_and_reset(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir), num_threads=1)
    reference = model.predict(PAIRS)
    model.num_threads = 2
    assert model.num_threads == 2
    np.testing.assert_array_equal(model.predict(PAIRS), reference)
    model.num_threads = None
    assert model.num_threads == crossrank.get_num_threads()


def test_pickles_and_precision_changes_keep_the_models_budget(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir), num_threads=1)
    assert pickle.loads(pickle.dumps(model)).num_threads == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CPUs without bfloat16 products say so
        model.bfloat16()
    assert model.num_threads == 1
    follows = pickle.loads(pickle.dumps(CrossEncoder(str(bert_dir))))
    assert follows.num_threads == crossrank.get_num_threads()


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), ("2", TypeError),
                                        (2.0, TypeError), (True, TypeError)])
def test_bad_counts_are_clear_errors(bert_dir: Path, bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="num_threads"):
        CrossEncoder(str(bert_dir), num_threads=bad)
    with pytest.raises(error, match="num_threads"):
        crossrank.set_num_threads(bad)
    model = CrossEncoder(str(bert_dir))
    with pytest.raises(error, match="num_threads"):
        model.num_threads = bad


def test_a_variable_that_is_not_a_count_is_ignored_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = crossrank.get_num_threads()
    assert threads >= 1
    assert any("OMP_NUM_THREADS" in str(w.message) and w.category is RuntimeWarning
               for w in caught), [str(w.message) for w in caught]
