"""Batch scoring on Ray Data and Spark, as the README's recipes write it, on local clusters.

Each test scores id-tagged pairs on the workers and checks: the scores equal one in-process
``predict`` of the same pairs, no pair is lost or duplicated, and each worker ran crossrank
within its CPU share (one compute thread for num_cpus=1 / spark.task.cpus=1).

The engines are optional: without ray, pyspark or a Java runtime the tests skip, unless
CROSSRANK_REQUIRE_DISTRIBUTED=1 (scripts/test.sh sets it) makes a missing one a failure.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossrank
from crossrank import CrossEncoder

pd = pytest.importorskip("pandas")

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(),
                                reason="counts worker threads through Linux's /proc")

REQUIRED = os.environ.get("CROSSRANK_REQUIRE_DISTRIBUTED") == "1"
CPUS_PER_WORKER = 1
THIS_MODULE = sys.modules[__name__]
TIMEOUT = 180  # seconds: a job stuck waiting for CPUs fails its test instead of hanging CI


def require(module: str) -> Any:
    """The module, or a skip when it is absent (a failure where CI requires it)."""
    if REQUIRED:
        return importlib.import_module(module)
    return pytest.importorskip(module)


def make_pairs(n: int) -> pd.DataFrame:
    """n (id, query, passage) rows whose texts differ in words and length."""
    words = ["berlin", "museum", "river", "coins", "capital", "people", "art", "history"]
    queries = [f"{words[i % 8]} {words[(i * 3) % 8]}?" for i in range(n)]
    passages = [" ".join(words[(i + k) % 8] for k in range(1 + i % 11)) for i in range(n)]
    return pd.DataFrame({"id": range(n), "query": queries, "passage": passages})


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return make_pairs(64)


@pytest.fixture(scope="module")
def expected(pairs: pd.DataFrame, bert_dir: Path) -> dict[int, float]:
    """Scores from one in-process predict, by id."""
    model = CrossEncoder(str(bert_dir))
    scores = model.predict(list(zip(pairs["query"], pairs["passage"])))
    return dict(zip(pairs["id"].tolist(), scores.tolist()))


# -- what runs on the workers ----------------------------------------------------------------
# pytest makes this module importable in this process only: the engines' cloudpickle is told
# to ship it by value (as it ships a notebook's functions), so workers need not import it.


def crossrank_threads() -> int:
    """crossrank's compute threads alive in this process: its pools name them crossrank-<i>."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            count += (task / "comm").read_text().startswith("crossrank")
        except OSError:  # the thread ended while we looked
            pass
    return count


def score_and_observe(model: CrossEncoder, queries: Any, passages: Any) -> pd.DataFrame:
    """The recipe's predict, with what this worker saw: its pid, crossrank's thread budget
    and the compute threads it started."""
    scores = model.predict(list(zip(queries, passages)))
    return pd.DataFrame({"score": scores, "budget": crossrank.get_num_threads(),
                         "threads": crossrank_threads(), "pid": os.getpid()})


class RayScorer:
    """The README's Ray Data scorer: one model per actor, loaded in __init__."""

    def __init__(self, model_path: str) -> None:
        self.model = CrossEncoder(model_path)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        seen = score_and_observe(self.model, batch["query"], batch["passage"])
        for column in seen.columns:
            batch[column] = seen[column].to_numpy()
        return batch


def make_spark_predict(model_path: str) -> Any:
    """The README's make_predict_fn for predict_batch_udf: runs once per Python worker."""
    model = CrossEncoder(model_path)

    def predict(queries: np.ndarray, passages: np.ndarray) -> dict[str, np.ndarray]:
        seen = score_and_observe(model, queries, passages)
        return {column: seen[column].to_numpy() for column in seen.columns}

    return predict


# -- the checks ----------------------------------------------------------------------------------


def finish_within(job: Callable[[], Any], seconds: float = TIMEOUT) -> Any:
    """job()'s result, or a TimeoutError once it has run `seconds` (left to the cluster's
    shutdown to end)."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(job).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False)


def check_scored(got: pd.DataFrame, expected: dict[int, float]) -> None:
    """Every pair back exactly once, with the in-process score, each worker within its share."""
    assert sorted(got["id"]) == sorted(expected), "pairs lost or duplicated"
    want = np.array([expected[i] for i in got["id"]], dtype=np.float32)
    # Equal up to float32 rounding: scores do not depend on batch composition or thread count
    # here, and a pair scored against the wrong text would differ by far more.
    np.testing.assert_allclose(got["score"].to_numpy(np.float32), want, rtol=1e-6, atol=1e-7)
    per_worker = got.groupby("pid")[["budget", "threads"]].max()
    print(f"crossrank per worker (pid, budget, threads started):\n{per_worker}")
    assert (per_worker["budget"] == CPUS_PER_WORKER).all(), per_worker
    assert (per_worker["threads"] <= CPUS_PER_WORKER).all(), (
        f"a worker with {CPUS_PER_WORKER} CPU ran more crossrank threads:\n{per_worker}")


def test_thread_count_sees_crossrank_pools(bert_model: CrossEncoder) -> None:
    """The observation the worker checks rely on: this process's pool is counted."""
    bert_model.predict([("a query", "a passage")])
    assert crossrank_threads() >= 1


@pytest.fixture(scope="module")
def engine_env() -> Iterator[pytest.MonkeyPatch]:
    """The environment the clusters start from: no thread variables of this process's own
    (Ray keeps a preset OMP_NUM_THREADS), so the workers get the ones the engines set."""
    env = pytest.MonkeyPatch()
    for name in ("OMP_NUM_THREADS", "CROSSRANK_NUM_THREADS"):
        env.delenv(name, raising=False)
    try:
        yield env
    finally:
        env.undo()


# -- Ray -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster(engine_env: pytest.MonkeyPatch) -> Iterator[Any]:
    ray = require("ray")
    require("ray.data")
    ray.cloudpickle.register_pickle_by_value(THIS_MODULE)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(THIS_MODULE)


def test_ray_data_map_batches_with_an_actor_per_cpu(
        ray_cluster: Any, pairs: pd.DataFrame, expected: dict[int, float],
        bert_dir: Path) -> None:
    ds = ray_cluster.data.from_items(pairs.to_dict("records"), override_num_blocks=4)
    scored = ds.map_batches(
        RayScorer, fn_constructor_kwargs={"model_path": str(bert_dir)},
        compute=ray_cluster.data.ActorPoolStrategy(size=2), num_cpus=CPUS_PER_WORKER,
        batch_size=16, batch_format="pandas")
    check_scored(finish_within(scored.to_pandas), expected)


def test_ray_task_with_a_shipped_model(
        ray_cluster: Any, pairs: pd.DataFrame, expected: dict[int, float],
        bert_model: CrossEncoder) -> None:
    """A loaded CrossEncoder as a task argument: it pickles as its path, the worker reloads."""
    remote = ray_cluster.remote(num_cpus=CPUS_PER_WORKER)(score_and_observe)
    halves = [pairs.iloc[:32], pairs.iloc[32:]]
    results = ray_cluster.get([remote.remote(bert_model, h["query"].tolist(),
                                             h["passage"].tolist()) for h in halves],
                              timeout=TIMEOUT)
    got = pd.concat([pd.concat([h[["id"]].reset_index(drop=True), r], axis=1)
                     for h, r in zip(halves, results)])
    check_scored(got, expected)


# -- Spark ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark(engine_env: pytest.MonkeyPatch) -> Iterator[Any]:
    pyspark = require("pyspark")
    require("pyarrow")  # pandas UDFs exchange Arrow batches
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        if REQUIRED:
            pytest.fail("Spark needs a Java runtime: none on PATH and JAVA_HOME unset")
        pytest.skip("Spark needs a Java runtime: none on PATH and JAVA_HOME unset")
    from pyspark.sql import SparkSession

    pyspark.cloudpickle.register_pickle_by_value(THIS_MODULE)
    # The Python workers run PYSPARK_PYTHON (else `python3` on PATH): this one, with crossrank.
    engine_env.setenv("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("crossrank-tests")
               .config("spark.task.cpus", str(CPUS_PER_WORKER))
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        pyspark.cloudpickle.unregister_pickle_by_value(THIS_MODULE)


SEEN_SCHEMA = "score float, budget int, threads int, pid int"


def spark_frame(spark: Any, pairs: pd.DataFrame) -> Any:
    return spark.createDataFrame(pairs).repartition(2)


def collect_scored(frame: Any) -> pd.DataFrame:
    return finish_within(frame.select("id", "seen.*").toPandas)


def test_spark_predict_batch_udf(spark: Any, pairs: pd.DataFrame,
                                 expected: dict[int, float], bert_dir: Path) -> None:
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

    seen = StructType([StructField("score", FloatType())] + [
        StructField(name, IntegerType()) for name in ("budget", "threads", "pid")])
    path = str(bert_dir)
    score = predict_batch_udf(lambda: make_spark_predict(path), return_type=seen,
                              batch_size=16)
    frame = spark_frame(spark, pairs).withColumn("seen", score("query", "passage"))
    check_scored(collect_scored(frame), expected)


def test_spark_pandas_udf_over_an_iterator(spark: Any, pairs: pd.DataFrame,
                                           expected: dict[int, float], bert_dir: Path) -> None:
    from pyspark.sql.functions import pandas_udf

    path = str(bert_dir)

    @pandas_udf(SEEN_SCHEMA)  # type: ignore[misc]
    def score(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        model = CrossEncoder(path)  # once per partition, not per batch
        for queries, passages in batches:
            yield score_and_observe(model, queries, passages)

    frame = spark_frame(spark, pairs).withColumn("seen", score("query", "passage"))
    check_scored(collect_scored(frame), expected)
