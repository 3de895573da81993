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

from ._processing import DEFAULT, Plan

# The named special tokens transformers passes to a chat template.
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                   "cls_token", "mask_token")
# What sentence-transformers looks for to decide a template wants structured content.
_STRUCTURED_PATTERNS = ("content[0]", ".type", "'type'", '"type"', "item.type",
                        "message.content[")


class _Tokenizes(Protocol):
    def tokenize_rendered(self, texts: list[str],
                          suffix: list[int] | None = None) -> list[list[int]]: ...


# The pair sentence-transformers renders first, then one probe per role varying only that
# role's content: a role whose probe renders like the first does not reach the prompt.
_PAIR_ROLE_PROBES = (("alpha", "bravo"), ("charlie", "bravo"), ("alpha", "foxtrot"))
_PAIR_ROLES = ("query", "document")


class ChatFormat:
    """A model's chat template(s) and how sentence-transformers fills them.

    ``template`` is the template in use (None when the model only has named templates and
    none is called ``"default"``); ``named`` the named templates, as transformers keeps
    them. A call's :class:`~crossrank._processing.Plan` adds Jinja variables and may pick
    another template (a template source or a name), as ``apply_chat_template`` does.
    """

    def __init__(self, template: str | None, special_tokens: dict[str, str], structured: bool,
                 named: dict[str, str] | None = None):
        self.template_source = template
        self.named = dict(named or {})
        self.special_tokens = special_tokens
        self.structured = structured
        self._compiled: dict[str, Any] = {}
        self._suffixes: dict[tuple[Any, ...], list[int]] = {}
        self._role_failures: dict[tuple[Any, ...], str | None] = {}

    @classmethod
    def load(cls, model_dir: Path, override: Any = None) -> ChatFormat | None:
        """The chat format of a model directory, or None when it has no chat template.
        ``override``: a ``chat_template`` given at load (``processor_kwargs``), which
        replaces the saved one as in transformers: a template, or named templates (a dict)."""
        config = _read_json(model_dir / "tokenizer_config.json")
        template, named = _templates_of(model_dir, config)
        if isinstance(override, str):
            template, named = override, {}
        elif isinstance(override, dict):
            named = {str(k): v for k, v in override.items()}
            default = named.get("default")
            template = default if isinstance(default, str) else None
        elif override is not None:
            raise TypeError("processor_kwargs['chat_template'] must be a template (a str) or "
                            f"named templates (a dict), got {type(override).__name__}")
        if template is None and not named:
            return None
        specials = {key: _token_text(config[key]) for key in _SPECIAL_TOKENS
                    if config.get(key) is not None}
        saved_format = (_read_json(model_dir / "sentence_bert_config.json")
                        .get("modality_config", {}).get("message", {}).get("format"))
        if saved_format in ("flat", "structured"):
            structured = saved_format == "structured"
        else:
            sources = [template] if template is not None else list(named.values())
            structured = any(isinstance(t, str) and p in t
                             for t in sources for p in _STRUCTURED_PATTERNS)
        return cls(template, specials, structured, named)

    def messages(self, query: str, document: str, prompt: str | None) -> list[dict[str, Any]]:
        """The conversation sentence-transformers builds for one pair."""
        turns = [("query", query), ("document", document)]
        if prompt:
            turns.insert(0, ("system", prompt))
        return [{"role": role, "content": self._content(text)} for role, text in turns]

    def render(self, pairs: list[tuple[str, str]], prompt: str | None,
               plan: Plan = DEFAULT) -> list[str]:
        template = self._template(plan)
        return [self._render(template, self.messages(q, d, prompt), plan) for q, d in pairs]

    def suffix(self, native: _Tokenizes, prompt: str | None, plan: Plan = DEFAULT) -> list[int]:
        """The template's tail tokens: the longest common token suffix of two renders whose
        non-system contents differ ("0" and "1 2 3 4"), as sentence-transformers derives it
        (with the call's variables and template). Empty when the renders never differ."""
        key = (prompt, plan.template, _key(plan.variables))
        if key not in self._suffixes:
            try:
                template = self._template(plan)
                renders = [self._render(template, self._skeleton(filler, prompt), plan)
                           for filler in ("0", "1 2 3 4")]
            except Exception:  # as in sentence-transformers: no suffix, never an error here
                self._suffixes[key] = []
                return []
            first, second = native.tokenize_rendered(renders)
            count = 0
            for left, right in zip(reversed(first), reversed(second)):
                if left != right:
                    break
                count += 1
            found = 0 < count < min(len(first), len(second))
            self._suffixes[key] = first[len(first) - count:] if found else []
        return self._suffixes[key]

    def check_pair_roles(self, plan: Plan, model_name: str) -> None:
        """sentence-transformers' ``_verify_pair_roles_supported``: a ValueError when the
        template (with the call's variables) cannot carry a pair: it raises, or a render
        does not change when the query or the document does."""
        key = (plan.template, _key(plan.variables))
        if key not in self._role_failures:
            self._role_failures[key] = self._pair_roles_failure(plan)
        failure = self._role_failures[key]
        if failure is None:
            return
        if self.structured:
            example = (
                '    <Query>: {{ (messages | selectattr("role", "eq", "query") | first)'
                '.content[0].text }}\n'
                '    <Document>: {{ (messages | selectattr("role", "eq", "document") | first)'
                '.content[0].text }}\n')
        else:
            example = (
                '    <Query>: {{ messages | selectattr("role", "eq", "query") | '
                'map(attribute="content") | first }}\n'
                '    <Document>: {{ messages | selectattr("role", "eq", "document") | '
                'map(attribute="content") | first }}\n')
        raise ValueError(
            f"The chat template of {model_name} cannot carry a 'query'/'document' pair "
            f"({failure}). Pair inputs are mapped to one message per role, so set a chat "
            f"template that renders both roles, e.g.:\n{example}"
            'via `processor_kwargs={"chat_template": ...}` when loading, '
            "`processing_kwargs={\"chat_template\": {\"chat_template\": ...}}` for a call, "
            "or a `chat_template.jinja` file alongside the model.")

    def _pair_roles_failure(self, plan: Plan) -> str | None:
        try:
            template = self._template(plan)
            base, *varied = [
                self._render(template, [{"role": role, "content": self._content(text)}
                                        for role, text in zip(_PAIR_ROLES, pair)], plan)
                for pair in _PAIR_ROLE_PROBES]
        except Exception as exc:  # reported, as sentence-transformers reports it
            return f"it raised {type(exc).__name__}: {exc}"
        dropped = [role for role, text in zip(_PAIR_ROLES, varied) if text == base]
        if dropped:
            roles = " and ".join(repr(role) for role in dropped)
            return f"the {roles} content does not reach the rendered prompt"
        return None

    def _template(self, plan: Plan) -> Any:
        """The compiled template a call renders with, chosen as transformers'
        ``get_chat_template`` chooses it."""
        choice = plan.template
        tools = plan.variables.get("tools")
        if self.named and (choice is None or choice in self.named):
            if choice is not None:
                source = self.named[choice]
            elif tools is not None and "tool_use" in self.named:
                source = self.named["tool_use"]
            elif "default" in self.named:
                source = self.named["default"]
            else:
                raise ValueError(
                    "This model has multiple chat templates with no default specified! Please "
                    "either pass a chat template or the name of the template you wish to use "
                    "to the `chat_template` argument. Available template names are "
                    f"{sorted(self.named)}.")
        elif choice is not None:
            source = choice
        elif self.template_source is not None:
            source = self.template_source
        else:  # pragma: no cover - load() returns None for a model without templates
            raise ValueError("this model has no chat template")
        if not isinstance(source, str):
            raise TypeError(f"a chat template must be a str, got {type(source).__name__}")
        if source not in self._compiled:
            self._compiled[source] = _compile(source)
        return self._compiled[source]

    def _skeleton(self, filler: str, prompt: str | None) -> list[dict[str, Any]]:
        return [m if m["role"] == "system" else {**m, "content": self._content(filler)}
                for m in self.messages("", "", prompt)]

    def _content(self, text: str) -> Any:
        return [{"type": "text", "text": text}] if self.structured else text

    def _render(self, template: Any, messages: list[dict[str, Any]], plan: Plan) -> str:
        variables = dict(plan.variables)
        tools = variables.pop("tools", None)
        documents = variables.pop("documents", None)
        add_generation_prompt = variables.pop("add_generation_prompt", False)
        if tools is not None and any(callable(t) for t in tools):
            raise ValueError("tools given as Python functions are not supported by crossrank: "
                             "give their JSON schemas")
        # The call's variables override the special tokens, as in transformers.
        return str(template.render(messages=messages, tools=tools, documents=documents,
                                   add_generation_prompt=add_generation_prompt,
                                   **{**self.special_tokens, **variables}))


def _key(variables: dict[str, Any]) -> str:
    """A cache key for a call's template variables (values may be unhashable)."""
    return repr(sorted(variables.items()))


def _templates_of(model_dir: Path, config: dict[str, Any]
                  ) -> tuple[str | None, dict[str, str]]:
    """The template in use and the named templates, as transformers loads them:
    ``chat_template.jinja`` (transformers >= 4.5x saves it so) with the named ones in
    ``additional_chat_templates/``, else the ``chat_template`` of tokenizer_config.json (a
    string, or named templates: ``[{"name": ..., "template": ...}]``)."""
    named: dict[str, str] = {}
    extra = model_dir / "additional_chat_templates"
    if extra.is_dir():
        named = {f.stem: f.read_text(encoding="utf-8") for f in sorted(extra.glob("*.jinja"))}
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        template = jinja_file.read_text(encoding="utf-8")
        return template, ({"default": template, **named} if named else {})
    value = config.get("chat_template")
    if isinstance(value, list):
        named = {**{str(t.get("name")): str(t["template"]) for t in value
                    if isinstance(t, dict) and isinstance(t.get("template"), str)}, **named}
        return named.get("default"), named
    if isinstance(value, str) and value:
        return value, ({"default": value, **named} if named else {})
    return (named.get("default"), named) if named else (None, {})


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
