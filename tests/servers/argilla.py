"""An Argilla 2.x server on 127.0.0.1 for the endpoints the Argilla export steps use.

``FakeArgilla`` keeps workspaces, datasets, their fields and questions, and records (upserted by
``external_id``) in memory, and answers 401 without the API key. Every request is recorded in
``argilla.api.requests``.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from tests.servers import FakeAPI, Reply, Request

API_KEY = "argilla.apikey"


class FakeArgilla:
    def __init__(self, workspaces: tuple[str, ...] = ("argilla",)) -> None:
        self._ids = itertools.count(1)
        self.workspaces = [{"id": self._id("ws"), "name": name} for name in workspaces]
        self.datasets: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.api = FakeAPI(self._handle)
        self.url = self.api.url

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def records(self, name: str) -> list[dict[str, Any]]:
        (dataset,) = [d for d in self.datasets.values() if d["name"] == name]
        return list(dataset["records"].values())

    def dataset(self, name: str) -> dict[str, Any]:
        (dataset,) = [d for d in self.datasets.values() if d["name"] == name]
        return dataset

    def _handle(self, request: Request) -> Reply:
        if request.headers.get("x-argilla-api-key") != API_KEY:
            return Reply(401, {"detail": "Could not validate credentials"})
        parts = request.path.split("?", 1)[0].strip("/").split("/")[2:]  # after api/v1
        with self._lock:
            return self._route(request.method, parts, request.json)

    def _route(self, method: str, parts: list[str], body: Any) -> Reply:
        if parts == ["me", "workspaces"]:
            return Reply(200, {"items": self.workspaces})
        if parts == ["me", "datasets"]:
            return Reply(200, {"items": [_public(d) for d in self.datasets.values()]})
        if parts == ["datasets"] and method == "POST":
            if any(d["name"] == body["name"] for d in self.datasets.values()):
                return Reply(409, {"detail": "Dataset already exists"})
            dataset = {"id": self._id("ds"), "status": "draft", **body}
            dataset.update(fields=[], questions=[], records={})
            self.datasets[dataset["id"]] = dataset
            return Reply(201, _public(dataset))
        if len(parts) < 3 or parts[0] != "datasets" or parts[1] not in self.datasets:
            return Reply(404, {"detail": "Not found"})
        dataset, what = self.datasets[parts[1]], parts[2:]
        if what in (["fields"], ["questions"]):
            kind = what[0]
            if method == "POST":
                if dataset["status"] != "draft":
                    return Reply(422, {"detail": "the dataset is published"})
                item = {"id": self._id(kind[0]), **body}
                dataset[kind].append(item)
                return Reply(201, item)
            return Reply(200, {"items": dataset[kind]})
        if what == ["publish"] and method == "PUT":
            if not dataset["fields"] or not any(q["required"] for q in dataset["questions"]):
                return Reply(422, {"detail": "needs a field and a required question"})
            dataset["status"] = "ready"
            return Reply(200, _public(dataset))
        if what == ["records", "bulk"] and method == "PUT":
            return self._upsert(dataset, body["items"])
        return Reply(404, {"detail": "Not found"})

    def _upsert(self, dataset: dict[str, Any], items: list[dict[str, Any]]) -> Reply:
        if dataset["status"] != "ready":
            return Reply(422, {"detail": "records can't be added to a draft dataset"})
        if len(items) > 500:
            return Reply(422, {"detail": "at most 500 records"})
        fields = {f["name"] for f in dataset["fields"]}
        questions = {q["id"] for q in dataset["questions"]}
        for item in items:
            if set(item["fields"]) - fields:
                return Reply(422, {"detail": f"unknown fields {set(item['fields']) - fields}"})
            if {s["question_id"] for s in item.get("suggestions", [])} - questions:
                return Reply(422, {"detail": "suggestion for an unknown question"})
            dataset["records"][item["external_id"]] = item
        return Reply(200, {"items": items, "updated_item_ids": []})


def _public(dataset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dataset.items() if k not in ("fields", "questions", "records")}
