"""A Hugging Face Hub on 127.0.0.1 for the endpoints ``datasets``' ``push_to_hub`` uses.

``FakeHub`` keeps dataset repositories in memory: repository info and creation, the tree
listing, pre-upload (parquet goes through LFS, the rest inline), the LFS batch API with basic
uploads, YAML validation and NDJSON commits. ``hub.files[repo_id]`` holds each repository's
committed files as bytes. Use it with ``hub_endpoint`` (below), which points ``datasets`` at it and
turns off the Xet upload path (the fake speaks LFS only).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from tests.servers import FakeAPI, Reply, Request

_SHA = "0" * 40


class FakeHub:
    def __init__(self) -> None:
        self.files: dict[str, dict[str, bytes]] = {}
        self.private: dict[str, bool] = {}
        self.fail_commits_with: int | None = None
        self.user = "loopback-user"
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.api = FakeAPI(self._handle)
        self.url = self.api.url

    def _handle(self, request: Request) -> Reply:
        path = request.path.split("?", 1)[0]
        with self._lock:
            if request.method == "POST" and path == "/api/repos/create":
                return self._create(request.json)
            if path == "/api/whoami-v2":
                return self._whoami(request)
            if path == "/api/validate-yaml":
                return Reply(200, {})
            if request.method == "PUT" and path.startswith("/lfs/"):
                self._blobs[path.removeprefix("/lfs/")] = bytes(request.body)
                return Reply(200, {})
            if path.endswith(".git/info/lfs/objects/batch"):
                return self._lfs_batch(request.json)
            if path.startswith("/api/datasets/"):
                return self._dataset(request, path.removeprefix("/api/datasets/"))
            if path.startswith("/datasets/") and "/resolve/" in path:
                return self._resolve(path.removeprefix("/datasets/"))
        return _missing("EntryNotFound")

    def _whoami(self, request: Request) -> Reply:
        """Any token is the account ``self.user``'s; no token is refused, as on the Hub."""
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Reply(401, {"error": "Invalid credentials in Authorization header"})
        return Reply(200, {"type": "user", "name": self.user, "auth": {"type": "access_token"}})

    def _create(self, body: dict[str, Any]) -> Reply:
        repo_id = f"{body['organization']}/{body['name']}"
        self.files.setdefault(repo_id, {})
        self.private[repo_id] = bool(body.get("private")) or body.get("visibility") == "private"
        return Reply(200, {"url": f"{self.url}/datasets/{repo_id}", "name": repo_id})

    def _lfs_batch(self, body: dict[str, Any]) -> Reply:
        objects = [
            {
                "oid": o["oid"],
                "size": o["size"],
                "actions": {"upload": {"href": f"{self.url}/lfs/{o['oid']}"}},
            }
            for o in body["objects"]
        ]
        return Reply(200, {"transfer": "basic", "objects": objects})

    def _dataset(self, request: Request, rest: str) -> Reply:
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        if repo_id not in self.files:
            return _missing("RepoNotFound")
        files = self.files[repo_id]
        action = parts[2] if len(parts) > 2 else "revision"
        if action == "preupload":
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular",
                    "shouldIgnore": False,
                }
                for f in request.json["files"]
            ]
            return Reply(200, {"files": modes})
        if action == "commit":
            return self._commit(repo_id, request.body)
        if action == "tree":
            folder = "/".join(parts[4:])
            prefix = f"{folder}/" if folder else ""
            inside = sorted(f for f in files if f.startswith(prefix))
            if folder and not inside:
                return _missing("EntryNotFound")
            entries = {}
            for name in inside:
                head, _, tail = name[len(prefix) :].partition("/")
                kind = "directory" if tail else "file"
                entries[prefix + head] = {"type": kind, "path": prefix + head, "oid": _SHA}
                if kind == "file":
                    entries[prefix + head]["size"] = len(files[name])
            return Reply(200, list(entries.values()))
        siblings = [{"rfilename": name} for name in sorted(files)]
        return Reply(
            200,
            {
                "id": repo_id,
                "sha": _SHA,
                "private": self.private.get(repo_id, False),
                "siblings": siblings,
            },
        )

    def _resolve(self, rest: str) -> Reply:
        repo_id, _, tail = rest.partition("/resolve/")
        name = tail.partition("/")[2]
        content = self.files.get(repo_id, {}).get(name)
        if content is None:
            return _missing("EntryNotFound")
        headers = {"x-repo-commit": _SHA, "etag": f'"{len(content)}-{hash(content)}"'}
        return Reply(200, raw=content, headers=headers)

    def _commit(self, repo_id: str, body: bytes) -> Reply:
        if self.fail_commits_with is not None:
            return Reply(self.fail_commits_with, {"error": "You don't have the rights"})
        for line in body.splitlines():
            item = orjson.loads(line)
            value = item["value"]
            if item["key"] == "file":
                self.files[repo_id][value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                self.files[repo_id][value["path"]] = self._blobs[value["oid"]]
            elif item["key"] == "deletedFile":
                self.files[repo_id].pop(value["path"], None)
        url = f"{self.url}/datasets/{repo_id}/commit/{'1' * 40}"
        return Reply(200, {"commitUrl": url, "commitOid": "1" * 40, "pullRequestUrl": None})


def _missing(code: str) -> Reply:
    return Reply(404, {"error": "not found"}, headers={"x-error-code": code})


@contextmanager
def hub_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running ``FakeHub`` that ``datasets`` and ``huggingface_hub`` talk to."""
    hub = FakeHub()
    hub.api.start()
    monkeypatch.setattr("datasets.config.HF_ENDPOINT", hub.url)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.url)
    monkeypatch.setattr(
        "huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE",
        hub.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DISABLE_XET", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        yield hub
    finally:
        hub.api.stop()
