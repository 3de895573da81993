"""Chat-template formatting of pairs, as sentence-transformers 6.x does it for models whose
tokenizer has a chat template (the decoder rerankers: Qwen3-Reranker and the like).

A pair becomes two messages, roles ``"query"`` and ``"document"``; a prompt becomes a
``"system"`` message in front. The conversation is rendered with Jinja exactly as
transformers' ``apply_chat_template`` renders it (same sandboxed environment, filters and
globals, the tokenizer's special tokens as variables); the native tokenizer then encodes
the text without adding special tokens, cuts it to ``max_length`` and writes the
template's suffix back over the end of a cut text (sentence-transformers' suffix restore:
the score is read at the last position, which must stay the template's tail).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The named special tokens transformers passes to a chat template.
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                   "cls_token", "mask_token")
# What sentence-transformers looks for to decide a template wants structured content.
_STRUCTURED_PATTERNS = ("content[0]", ".type", "'type'", '"type"', "item.type",
                        "message.content[")


class _Tokenizes(Protocol):
    def tokenize_rendered(self, texts: list[str],
                          suffix: list[int] | None = None) -> list[list[int]]: ...


class ChatFormat:
    """A model's chat template and how sentence-transformers fills it."""

    def __init__(self, template: str, special_tokens: dict[str, str], structured: bool):
        self.template_source = template
        self.special_tokens = special_tokens
        self.structured = structured
        self._template = _compile(template)
        self._suffixes: dict[str | None, list[int]] = {}

    @classmethod
    def load(cls, model_dir: Path) -> ChatFormat | None:
        """The chat format of a model directory, or None when it has no chat template."""
        config = _read_json(model_dir / "tokenizer_config.json")
        template = _template_of(model_dir, config)
        if template is None:
            return None
        specials = {key: _token_text(config[key]) for key in _SPECIAL_TOKENS
                    if config.get(key) is not None}
        saved_format = (_read_json(model_dir / "sentence_bert_config.json")
                        .get("modality_config", {}).get("message", {}).get("format"))
        if saved_format in ("flat", "structured"):
            structured = saved_format == "structured"
        else:
            structured = any(p in template for p in _STRUCTURED_PATTERNS)
        return cls(template, specials, structured)

    def messages(self, query: str, document: str, prompt: str | None) -> list[dict[str, Any]]:
        """The conversation sentence-transformers builds for one pair."""
        turns = [("query", query), ("document", document)]
        if prompt:
            turns.insert(0, ("system", prompt))
        return [{"role": role, "content": self._content(text)} for role, text in turns]

    def render(self, pairs: list[tuple[str, str]], prompt: str | None) -> list[str]:
        return [self._render(self.messages(q, d, prompt)) for q, d in pairs]

    def suffix(self, native: _Tokenizes, prompt: str | None) -> list[int]:
        """The template's tail tokens: the longest common token suffix of two renders whose
        non-system contents differ ("0" and "1 2 3 4"), as sentence-transformers derives it.
        Empty when the renders never differ (nothing to restore)."""
        if prompt not in self._suffixes:
            renders = [self._render(self._skeleton(filler, prompt)) for filler in ("0", "1 2 3 4")]
            first, second = native.tokenize_rendered(renders)
            count = 0
            for left, right in zip(reversed(first), reversed(second)):
                if left != right:
                    break
                count += 1
            found = 0 < count < min(len(first), len(second))
            self._suffixes[prompt] = first[len(first) - count:] if found else []
        return self._suffixes[prompt]

    def _skeleton(self, filler: str, prompt: str | None) -> list[dict[str, Any]]:
        return [m if m["role"] == "system" else {**m, "content": self._content(filler)}
                for m in self.messages("", "", prompt)]

    def _content(self, text: str) -> Any:
        return [{"type": "text", "text": text}] if self.structured else text

    def _render(self, messages: list[dict[str, Any]]) -> str:
        return str(self._template.render(messages=messages, tools=None, documents=None,
                                         add_generation_prompt=False, **self.special_tokens))


def _template_of(model_dir: Path, config: dict[str, Any]) -> str | None:
    """``chat_template.jinja`` (transformers >= 4.5x saves it so), else the
    ``chat_template`` of tokenizer_config.json (a string, or named templates: "default")."""
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None


def _token_text(token: Any) -> str:
    return str(token.get("content", "")) if isinstance(token, dict) else str(token)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


class _Generation(jinja2.ext.Extension):
    """``{% generation %}`` blocks render their body (transformers tracks them only for
    assistant masks, which scoring never asks for)."""

    tags = {"generation"}  # noqa: RUF012 (jinja2.ext.Extension declares it a set)

    def parse(self, parser: Any) -> Any:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> Any:
        return caller()


class _Namespace(jinja2.utils.Namespace):
    """Namespaces that refuse underscore names, as transformers' do."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot store underscore-prefixed attributes ({name!r})")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    """transformers' ``tojson``: no HTML escaping, json.dumps' options."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _compile(template: str) -> Any:
    """The template in the environment transformers renders chat templates in."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = dict
    env.globals["namespace"] = _Namespace
    return env.from_string(template)
