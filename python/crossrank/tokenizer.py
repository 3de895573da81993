"""``model.tokenizer``: the Rust tokenizer the model uses, callable like transformers' one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._inputs import normalize_pairs

if TYPE_CHECKING:
    from ._crossrank import NativeCrossEncoder


class Tokenizer:
    """Tokenizes (query, document) pairs exactly as the model sees them."""

    def __init__(self, native: NativeCrossEncoder) -> None:
        self._native = native

    def _rebind(self, native: NativeCrossEncoder) -> None:
        """The model was reloaded (another precision): tokenize with the new native model."""
        self._native = native

    @property
    def model_max_length(self) -> int:
        return self._native.max_length

    def __call__(self, text: Any, text_pair: Any = None) -> dict[str, Any]:
        """``tokenizer(queries, documents)`` or ``tokenizer(q, d)``: ``input_ids`` and
        ``token_type_ids``, truncated to ``model_max_length``, without padding."""
        single = isinstance(text, str)
        if text_pair is None:
            pairs = normalize_pairs([text] if single else text)
        else:
            texts = [text] if single else list(text)
            others = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if len(texts) != len(others):
                raise ValueError(f"got {len(texts)} texts and {len(others)} text pairs")
            pairs = normalize_pairs(list(zip(texts, others)))
        encoded = self._native.tokenize(pairs)
        ids = [e[0] for e in encoded]
        types = [e[1] for e in encoded]
        if single:
            return {"input_ids": ids[0], "token_type_ids": types[0]}
        return {"input_ids": ids, "token_type_ids": types}

    def to_json(self) -> str:
        """The tokenizer.json of the tokenizer in use (truncation settings included)."""
        return self._native.tokenizer_json()

    def __repr__(self) -> str:
        return f"Tokenizer(model_max_length={self.model_max_length})"
