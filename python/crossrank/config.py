"""The model's Hugging Face config, readable as a dict or by attribute."""

from __future__ import annotations

from typing import Any


class ModelConfig(dict):  # type: ignore[type-arg]
    """``config.json`` as a mapping; ``config.num_labels`` and ``config["num_labels"]`` both work.

    As in transformers, ``id2label`` has int keys and ``num_labels`` is always present.
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__(raw)
        if isinstance(self.get("id2label"), dict):
            self["id2label"] = {int(k): v for k, v in self["id2label"].items()}
        if isinstance(self.get("label2id"), dict):
            self["label2id"] = {k: int(v) for k, v in self["label2id"].items()}
        if "num_labels" not in self:
            self["num_labels"] = len(self.get("id2label") or {}) or 1

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no attribute {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return dict(self)
