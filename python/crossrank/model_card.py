"""``model.model_card_data``: what sentence-transformers' evaluators record on a model.

Every sentence-transformers evaluator ends with
``model.model_card_data.set_evaluation_metrics(evaluator, metrics, epoch, step)``, and code
around them reads the results back from ``eval_results_dict`` and ``training_logs``. crossrank
writes no model card (``save`` copies the model's own README), so this object only records
what it is given, under the attribute names of sentence-transformers'
``CrossEncoderModelCardData``; it imports neither sentence-transformers nor torch.
"""

from __future__ import annotations

import weakref
from copy import copy
from dataclasses import dataclass, field
from typing import Any


def _default_tags() -> list[str]:
    return ["sentence-transformers", "cross-encoder", "reranker"]


@dataclass
class CrossEncoderModelCardData:
    """The data sentence-transformers would put in a model card, as it records it.

    The arguments are the ones users pass to sentence-transformers'
    ``CrossEncoderModelCardData`` (``language``, ``license``, ``model_name``, ``model_id``,
    ``train_datasets``, ``eval_datasets``, ``task_name``, ``tags``, ``local_files_only``,
    ``generate_widget_examples``); they are kept as given. Evaluators fill
    ``eval_results_dict`` (evaluator -> its metrics) and ``training_logs`` (one row per step,
    with each evaluator's primary metric) through :meth:`set_evaluation_metrics`.

    crossrank does not look models up on the Hub, so ``base_model`` and
    ``base_model_revision`` stay None unless set.
    """

    language: str | list[str] | None = field(default_factory=list)
    license: str | None = None
    model_name: str | None = None
    model_id: str | None = None
    train_datasets: list[dict[str, str]] = field(default_factory=list)
    eval_datasets: list[dict[str, str]] = field(default_factory=list)
    task_name: str | None = None
    tags: list[str] = field(default_factory=_default_tags)
    local_files_only: bool = False
    generate_widget_examples: bool = True

    base_model: str | None = field(default=None, init=False)
    base_model_revision: str | None = field(default=None, init=False)
    eval_results_dict: dict[Any, dict[str, Any]] = field(default_factory=dict, init=False)
    training_logs: list[dict[str, Any]] = field(default_factory=list, init=False)
    # A weak reference: the model holds this object, and a cycle would keep a dropped model's
    # memory until the garbage collector runs.
    _model_ref: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def model(self) -> Any:
        """The model this data describes (None once it is gone)."""
        return None if self._model_ref is None else self._model_ref()

    def set_evaluation_metrics(self, evaluator: Any, metrics: dict[str, Any], epoch: int = 0,
                               step: int = 0) -> None:
        """Records ``metrics`` for ``evaluator``, and its primary metric(s) in the training
        log row of ``step``, as sentence-transformers does."""
        self.eval_results_dict[evaluator] = copy(metrics)
        primary = _primary_metrics(evaluator)
        if not primary:
            return
        logged = {key: value for key, value in metrics.items() if key in primary}
        if self.training_logs and self.training_logs[-1]["Step"] == step:
            self.training_logs[-1].update(logged)
        else:
            self.training_logs.append({"Epoch": epoch, "Step": step, **logged})

    def register_model(self, model: Any) -> None:
        """Remembers the model this data describes."""
        self._model_ref = weakref.ref(model)

    def set_model_id(self, model_id: str) -> None:
        self.model_id = model_id

    def set_base_model(self, model_id: str, revision: str | None = None) -> bool:
        """Sets the base model as given. (sentence-transformers first checks it on the Hub;
        crossrank does not.) Returns True."""
        self.base_model = model_id
        self.base_model_revision = revision
        return True

    def set_language(self, language: str | list[str]) -> None:
        self.language = [language] if isinstance(language, str) else language

    def set_license(self, license: str) -> None:
        self.license = license

    def add_tags(self, tags: str | list[str]) -> None:
        for tag in [tags] if isinstance(tags, str) else tags:
            if tag not in self.tags:
                self.tags.append(tag)


def _primary_metrics(evaluator: Any) -> list[str]:
    """The evaluator's primary metric names; a sequential evaluator (one with
    ``evaluators``) names its members' ones, as in sentence-transformers."""
    primary = getattr(evaluator, "primary_metric", None)
    if not primary:
        return []
    members = getattr(evaluator, "evaluators", None)
    if isinstance(members, (list, tuple)):
        return [m.primary_metric for m in members if getattr(m, "primary_metric", None)]
    return [primary] if isinstance(primary, str) else list(primary)


def check_model_card_data(value: Any, local_files_only: bool) -> Any:
    """The ``model_card_data`` constructor argument: None (a new one), crossrank's own, or
    another object that records evaluations (sentence-transformers'
    ``CrossEncoderModelCardData``)."""
    if value is None:
        return CrossEncoderModelCardData(local_files_only=local_files_only)
    if not callable(getattr(value, "set_evaluation_metrics", None)):
        raise TypeError("model_card_data must be a CrossEncoderModelCardData (crossrank's or "
                        "sentence-transformers'), got " + type(value).__name__)
    return value


__all__ = ["CrossEncoderModelCardData"]
