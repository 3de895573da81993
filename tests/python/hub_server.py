"""A small Hugging Face Hub look-alike on loopback, serving fixture model directories.

It answers what crossrank's hub client (and ``huggingface_hub``) ask for:

- ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}``: model info
  (``sha``, ``siblings`` with sizes), ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound``
  on a 404;
- ``GET``/``HEAD /{repo}/resolve/{rev}/{file}``: the file, with ``ETag``, ``X-Repo-Commit``,
  ``Content-Length``, ``Accept-Ranges`` and ``Range`` support (206 + ``Content-Range``).
  Weight files answer as the hub answers LFS files: a 302 to an absolute ``/cdn/`` URL, with
  ``X-Linked-Etag`` (their sha256) and ``X-Linked-Size``.

Switches for failure cases: :meth:`HubServer.gate` (401 without the token, 403 with a wrong
one; a private repository also hides its model info), :attr:`HubServer.drop_mid_file` (send
half of a file's body, then close the connection) and :meth:`HubServer.stop`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".onnx", ".model", ".msgpack")


@dataclass
class _File:
    data: bytes
    lfs: bool
    etag: str  # sha256 for LFS files, git blob sha1 otherwise (as the hub does)


@dataclass
class _Repo:
    commits: dict[str, dict[str, _File]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    private: bool = False


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


def _read_dir(directory: Path) -> dict[str, _File]:
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        data = path.read_bytes()
        lfs = name.endswith(LFS_SUFFIXES)
        if lfs:
            etag = hashlib.sha256(data).hexdigest()
        else:
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        files[name] = _File(data, lfs, etag)
    return files


class HubServer:
    """A threaded hub on ``127.0.0.1`` (random port). Use as a context manager, or
    :meth:`start` / :meth:`stop`."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[Request] = []
        #: File names whose next full-body downloads send half the body, then hang up
        #: (each entry is used once per listed occurrence: a name listed twice drops twice).
        self.drop_mid_file: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- content -------------------------------------------------------------------------

    def add_commit(self, repo_id: str, directory: Path, *refs: str) -> str:
        """Adds the files of ``directory`` as a new commit of ``repo_id`` and points
        ``refs`` (default ``main``) at it. Returns the commit hash."""
        repo = self.repos.setdefault(repo_id, _Repo())
        files = _read_dir(directory)
        digest = hashlib.sha1(repo_id.encode())
        digest.update(str(len(repo.commits)).encode())
        for name, f in files.items():
            digest.update(name.encode() + f.etag.encode())
        commit = digest.hexdigest()
        repo.commits[commit] = files
        for ref in refs or ("main",):
            repo.refs[ref] = commit
        return commit

    def gate(self, repo_id: str, token: str, private: bool = False) -> None:
        """Requires ``Authorization: Bearer <token>`` for the repository's files (a gated
        model); ``private=True`` also hides its model info (401 ``RepoNotFound``)."""
        self.repos[repo_id].token = token
        self.repos[repo_id].private = private

    def requested_files(self, repo_id: str) -> list[str]:
        """File names fetched with a body (not the 1-byte metadata probes) from resolve URLs."""
        prefix = f"/{repo_id}/resolve/"
        names = []
        for r in self.requests:
            if r.method == "GET" and r.path.startswith(prefix) and r.headers.get(
                "range", ""
            ) != "bytes=0-0":
                names.append(unquote(r.path[len(prefix):].split("?")[0]).split("/", 1)[1])
        return names

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lookups for the handler ---------------------------------------------------------

    def _commit(self, repo: _Repo, revision: str) -> str | None:
        if revision in repo.commits:
            return revision
        return repo.refs.get(revision)

    def _take_drop(self, name: str) -> bool:
        with self._lock:
            if name in self.drop_mid_file:
                self.drop_mid_file.remove(name)
                return True
        return False


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (and the mid-file drops) are part of the tests.
        pass


_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)/tree/(?P<rev>[^/]+)(?:/(?P<dir>.*))?$")
_API = re.compile(r"^/api/models/(?P<repo>.+?)(?:/revision/(?P<rev>[^/]+))?/?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<repo>.+)/(?P<commit>[0-9a-f]{40})/(?P<file>.+)$")


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 5

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    # -- dispatch ------------------------------------------------------------------------

    def _serve(self, body: bool) -> None:
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.hub.requests.append(Request(self.command, path, headers))
        if m := _TREE.match(path):
            self._tree(unquote(m["repo"]), unquote(m["rev"]), unquote(m["dir"] or ""), body)
        elif m := _API.match(path):
            self._info(unquote(m["repo"]), unquote(m["rev"] or "main"), body)
        elif m := _CDN.match(path):
            repo = self.hub.repos.get(unquote(m["repo"]))
            f = repo.commits.get(m["commit"], {}).get(unquote(m["file"])) if repo else None
            if f is None:
                self._error(404, "EntryNotFound", body)
            else:
                self._file(unquote(m["file"]), f, m["commit"], body)
        elif m := _RESOLVE.match(path):
            self._resolve(unquote(m["repo"]), unquote(m["rev"]), unquote(m["file"]), body)
        else:
            self._error(404, None, body)

    def _authorized(self, repo: _Repo) -> int | None:
        """None when allowed, else the status to answer."""
        if repo.token is None:
            return None
        given = self.headers.get("Authorization", "")
        if not given:
            return 401
        return None if given == f"Bearer {repo.token}" else 403

    def _info(self, repo_id: str, revision: str, body: bool) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", body)
        if repo.private and self._authorized(repo) is not None:
            return self._error(401, "RepoNotFound", body)
        commit = self.hub._commit(repo, revision)
        if commit is None:
            return self._error(404, "RevisionNotFound", body)
        siblings = []
        for name, f in repo.commits[commit].items():
            entry: dict[str, Any] = {"rfilename": name, "size": len(f.data), "blobId": f.etag}
            if f.lfs:
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{f.etag}\n"
                entry["blobId"] = hashlib.sha1(pointer.encode()).hexdigest()
                entry["lfs"] = {"sha256": f.etag, "size": len(f.data),
                                "pointerSize": len(pointer)}
            siblings.append(entry)
        info = {"id": repo_id, "modelId": repo_id, "sha": commit, "siblings": siblings,
                "private": repo.private, "gated": "auto" if repo.token else False}
        self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)

    def _tree(self, repo_id: str, revision: str, directory: str, body: bool) -> None:
        """The file listing transformers asks for (``/api/models/{repo}/tree/{rev}/{dir}``)."""
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and self._authorized(repo) is not None):
            return self._error(404 if repo is None else 401, "RepoNotFound", body)
        commit = self.hub._commit(repo, revision)
        if commit is None:
            return self._error(404, "RevisionNotFound", body)
        prefix = directory.strip("/") + "/" if directory.strip("/") else ""
        entries = [{"type": "file", "oid": f.etag, "size": len(f.data), "path": name}
                   for name, f in repo.commits[commit].items()
                   if name.startswith(prefix) and "/" not in name[len(prefix):]]
        if prefix and not entries:
            return self._error(404, "EntryNotFound", body)
        self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, body)

    def _resolve(self, repo_id: str, revision: str, name: str, body: bool) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", body)
        denied = self._authorized(repo)
        if denied is not None:
            code = "RepoNotFound" if repo.private and denied == 401 else "GatedRepo"
            return self._error(denied, code, body)
        commit = self.hub._commit(repo, revision)
        if commit is None:
            return self._error(404, "RevisionNotFound", body)
        f = repo.commits[commit].get(name)
        if f is None:
            return self._error(404, "EntryNotFound", body, {"X-Repo-Commit": commit})
        if f.lfs:
            location = f"{self.hub.url}/cdn/{repo_id}/{commit}/{name}"
            self._send(302, b"", {
                "Location": location, "X-Repo-Commit": commit, "ETag": f'"{f.etag}"',
                "X-Linked-Etag": f'"{f.etag}"', "X-Linked-Size": str(len(f.data)),
            }, body)
        else:
            self._file(name, f, commit, body)

    # -- answers -------------------------------------------------------------------------

    def _file(self, name: str, f: _File, commit: str, body: bool) -> None:
        size = len(f.data)
        headers = {"ETag": f'"{f.etag}"', "X-Repo-Commit": commit, "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if m is None or int(m[1]) >= size:
                headers["Content-Range"] = f"bytes */{size}"
                return self._send(416, b"", headers, body)
            start = int(m[1])
            end = min(int(m[2]), size - 1) if m[2] else size - 1
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        payload = f.data[start:end + 1]
        if body and len(payload) > 1 and self.hub._take_drop(name):
            # Promise the whole body, send half of it, hang up.
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(status, payload, headers, body)

    def _error(self, status: int, code: str | None, body: bool,
               extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json", **(extra or {})}
        message = {401: "Invalid username or password.", 403: "Access restricted",
                   404: "Not found"}.get(status, "error")
        if code:
            headers["X-Error-Code"] = code
            headers["X-Error-Message"] = message
        self._send(status, json.dumps({"error": message}).encode(), headers, body)

    def _send(self, status: int, payload: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body and payload:
            self.wfile.write(payload)


def copy_model(source: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A copy of a fixture model directory, plus ``extra`` files (name -> content)."""
    shutil.copytree(source, target)
    for name, data in (extra or {}).items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
    return target
