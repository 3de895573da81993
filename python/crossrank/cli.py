"""The ``crossrank`` command line: rank documents for a query, or score pairs.

Examples::

    crossrank rank "how many people live in berlin?" "Berlin has 3.5 million people." "Paris"
    crossrank rank "query" --file documents.txt --top-k 10 --format table
    cat requests.jsonl | crossrank rank          # {"query": ..., "documents": [...]} per line
    crossrank predict --file pairs.tsv           # query<TAB>document per line
    crossrank predict --file pairs.jsonl --format jsonl

``python -m crossrank`` runs the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, Callable

import numpy as np

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L12-v2"

# Keys a JSON object may use for the two texts of a pair, in order of preference.
_PAIR_KEYS = (("query", "document"), ("query", "passage"), ("query", "text"),
              ("text", "text_pair"), ("sentence1", "sentence2"), ("premise", "hypothesis"))


class UsageError(Exception):
    """Bad input: reported in one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        sys.stdout.flush()
        return result
    except UsageError as exc:
        parser.exit(2, f"crossrank {args.command}: error: {exc}\n")
    except (OSError, ValueError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        print(f"crossrank {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("crossrank: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="crossrank",
        description="Rank documents for a query, or score text pairs, with a cross-encoder "
                    "(a drop-in for sentence-transformers' CrossEncoder, in Rust).",
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    model = common.add_argument_group("model")
    model.add_argument("-m", "--model", default=DEFAULT_MODEL,
                       help=f"Hugging Face Hub model id or local directory (default: "
                            f"{DEFAULT_MODEL})")
    model.add_argument("--revision", help="branch, tag or commit of a hub model")
    model.add_argument("--cache-folder", help="hub cache directory (default: the "
                                              "huggingface_hub cache, $HF_HOME/hub)")
    model.add_argument("--local-files-only", action="store_true",
                       help="use the cache only, no downloads")
    model.add_argument("--batch-size", type=_positive_int, default=32,
                       help="pairs per batch (default: 32)")
    model.add_argument("--max-length", type=_positive_int, default=None,
                       help="truncate pairs to this many tokens (default: the model's)")
    model.add_argument("--precision", choices=("float32", "bfloat16", "int8"),
                       default="float32",
                       help="precision of the matrix products: float32 (exact, default), int8 "
                            "(fastest) or bfloat16")
    model.add_argument("--threads", type=_positive_int, default=None,
                       help="compute threads (default: CROSSRANK_NUM_THREADS, OMP_NUM_THREADS, "
                            "else the CPUs this process may use)")
    model.add_argument("--activation", choices=("model", "sigmoid", "none"), default="model",
                       help="applied to the logits: the model's saved one (default), sigmoid, "
                            "or none (raw logits)")
    model.add_argument("--progress", action="store_true",
                       help="show a progress bar on stderr while scoring")

    rank = commands.add_parser(
        "rank", parents=[common], help="rank documents by relevance to a query",
        description="Rank documents by relevance to a query. The query and documents come "
                    "from the arguments; or the query from the arguments and the documents, "
                    "one per line, from --file or stdin; or, with no query argument, "
                    'requests {"query": ..., "documents": [...]} as JSON lines from --file or '
                    "stdin.",
    )
    rank.add_argument("query", nargs="?", help="the query")
    rank.add_argument("documents", nargs="*", metavar="document", help="documents to rank")
    rank.add_argument("-f", "--file", help="documents, one per line (or JSON-lines requests "
                                           "when no query is given); '-' for stdin")
    rank.add_argument("-k", "--top-k", type=_non_negative_int, default=None,
                      help="only the best K documents")
    rank.add_argument("--format", choices=("jsonl", "table"), default=None,
                      help="output: JSON lines, or a table (default: a table on a terminal, "
                           "else JSON lines)")
    rank.set_defaults(run=_run_rank)

    predict = commands.add_parser(
        "predict", parents=[common], help="score (query, document) pairs",
        description="Score text pairs: JSON lines (a [query, document] list, or an object "
                    'such as {"query": ..., "document": ...}) or TSV (query<TAB>document), '
                    "from --file or stdin. Writes one line of scores per pair, in order; "
                    "blank lines are skipped.",
    )
    predict.add_argument("-f", "--file", default="-", help="input file; '-' for stdin "
                                                          "(default)")
    predict.add_argument("--input-format", choices=("auto", "jsonl", "tsv"), default="auto",
                         help="default: from the file extension, else from the first line")
    predict.add_argument("--format", choices=("text", "jsonl"), default="text",
                         help="output: scores as text (tab-separated for several labels), "
                              'or JSON lines {"score": ...} / {"scores": [...]}')
    predict.add_argument("--apply-softmax", action="store_true",
                         help="softmax over the labels after the activation")
    predict.set_defaults(run=_run_predict)
    return parser


# -- commands ------------------------------------------------------------------------------

def _run_rank(args: argparse.Namespace) -> int:
    if args.query is None:
        requests = list(_read_requests(args.file))
    else:
        if args.documents and args.file:
            raise UsageError("give documents as arguments or with --file, not both")
        documents = args.documents or list(_read_document_lines(args.file))
        requests = [(args.query, documents)]
    model = _load(args)
    table = args.format == "table" or (args.format is None and sys.stdout.isatty())
    out = sys.stdout
    for query_id, (query, documents) in enumerate(requests):
        ranking = model.rank(query, documents, top_k=args.top_k, return_documents=True,
                             batch_size=args.batch_size, show_progress_bar=args.progress,
                             activation_fn=_activation(args))
        if table:
            if len(requests) > 1 or args.query is None:
                out.write(("\n" if query_id else "") + f"query {query_id}: {query}\n")
            _write_table(out, ranking)
            continue
        for rank_no, hit in enumerate(ranking, 1):
            record: dict[str, Any] = {} if args.query is not None else {"query_id": query_id}
            record.update(rank=rank_no, corpus_id=int(hit["corpus_id"]),
                          score=_number(hit["score"]), text=hit["text"])
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    pairs = list(_read_pairs(args.file, args.input_format))
    model = _load(args)
    scores = model.predict(pairs, batch_size=args.batch_size, show_progress_bar=args.progress,
                           activation_fn=_activation(args), apply_softmax=args.apply_softmax)
    scores = np.asarray(scores, dtype=np.float32)
    out = sys.stdout
    for row in scores:
        values = [_number(v) for v in np.atleast_1d(row)]
        if args.format == "jsonl":
            record = {"score": values[0]} if scores.ndim == 1 else {"scores": values}
            out.write(json.dumps(record) + "\n")
        else:
            out.write("\t".join(repr(v) for v in values) + "\n")
    return 0


def _load(args: argparse.Namespace) -> Any:
    from .cross_encoder import CrossEncoder

    return CrossEncoder(args.model, max_length=args.max_length, revision=args.revision,
                        cache_folder=args.cache_folder, local_files_only=args.local_files_only,
                        precision=args.precision, num_threads=args.threads)


def _activation(args: argparse.Namespace) -> Callable[..., Any] | None:
    from ._activations import ACTIVATIONS

    return {"model": None, "sigmoid": ACTIVATIONS["sigmoid"],
            "none": ACTIVATIONS["identity"]}[args.activation]


# -- input ---------------------------------------------------------------------------------

def _open_input(path: str | None) -> IO[str]:
    if path is None or path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no input: pass --file, or pipe the input to stdin")
        return sys.stdin
    try:
        return open(path, encoding="utf-8")  # noqa: SIM115 - closed by _lines
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _lines(path: str | None) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers, newline stripped."""
    stream = _open_input(path)
    try:
        for number, line in enumerate(stream, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line
    finally:
        if stream is not sys.stdin:
            stream.close()


def _read_document_lines(path: str | None) -> Iterator[str]:
    for _, line in _lines(path):
        yield line


def _read_requests(path: str | None) -> Iterator[tuple[str, list[str]]]:
    for number, line in _lines(path):
        record = _json(line, number, path)
        if not isinstance(record, dict) or not isinstance(record.get("query"), str):
            raise UsageError(f"{_where(path, number)}: expected a JSON object "
                             '{"query": "...", "documents": ["...", ...]}')
        documents = record.get("documents", record.get("docs"))
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
            raise UsageError(f'{_where(path, number)}: "documents" must be a list of strings')
        yield record["query"], documents


def _read_pairs(path: str | None, input_format: str) -> Iterator[tuple[str, str]]:
    lines = _lines(path)
    fmt = input_format
    if fmt == "auto" and path not in (None, "-"):
        ext = os.path.splitext(path or "")[1].lower()
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv",
               ".tab": "tsv"}.get(ext, "auto")
    for number, line in lines:
        if fmt == "auto":
            fmt = "jsonl" if line.lstrip().startswith(("[", "{")) else "tsv"
        if fmt == "tsv":
            fields = line.split("\t")
            if len(fields) != 2:
                raise UsageError(f"{_where(path, number)}: expected query<TAB>document, got "
                                 f"{len(fields)} field(s) (use JSON lines for texts with tabs)")
            yield fields[0], fields[1]
        else:
            yield _pair(_json(line, number, path), path, number)


def _pair(record: Any, path: str | None, number: int) -> tuple[str, str]:
    if isinstance(record, list) and len(record) == 2 and all(isinstance(x, str) for x in record):
        return record[0], record[1]
    if isinstance(record, dict):
        for first, second in _PAIR_KEYS:
            if isinstance(record.get(first), str) and isinstance(record.get(second), str):
                return record[first], record[second]
    raise UsageError(f"{_where(path, number)}: expected a pair: [\"query\", \"document\"] or "
                     '{"query": "...", "document": "..."}')


def _json(line: str, number: int, path: str | None) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{_where(path, number)}: not JSON ({exc.msg})") from None


def _where(path: str | None, number: int) -> str:
    return f"{'<stdin>' if path in (None, '-') else path}, line {number}"


# -- output --------------------------------------------------------------------------------

def _number(value: Any) -> float:
    """A float32 score as the shortest decimal that reads back as the same float32."""
    return float(str(np.float32(value)))


def _write_table(out: IO[str], ranking: Iterable[dict[str, Any]]) -> None:
    rows = [(str(i), f"{float(hit['score']):.4f}", str(hit["corpus_id"]),
             " ".join(str(hit["text"]).split())) for i, hit in enumerate(ranking, 1)]
    header = ("rank", "score", "id", "text")
    widths = [max([len(header[c])] + [len(r[c]) for r in rows]) for c in range(3)]
    room = max(20, shutil.get_terminal_size((100, 24)).columns - sum(widths) - 6)
    for row in [header, *rows]:
        text = row[3] if len(row[3]) <= room else row[3][: room - 3] + "..."
        cells = [row[c].rjust(widths[c]) for c in range(3)]
        out.write("  ".join([*cells, text]) + "\n")


# -- helpers -------------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _broken_pipe() -> int:
    # The reader went away (`crossrank ... | head`): stop quietly.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0
