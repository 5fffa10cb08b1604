"""Steps that send rows to Argilla 2.x for human review: ``TextGenerationToArgilla`` and
``PreferenceToArgilla``.

They speak Argilla's HTTP API (``/api/v1``) with httpx, so Argilla's client is not a dependency:
find the workspace, find the dataset by name or create it (its fields, its questions, then
publish it), then upsert the rows as records, 500 a request (the server's limit). Each record's
``external_id`` is a hash of its content, so a rerun or a resumed run updates the records it
already sent instead of adding them twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr

from synthflow.audit import Exposure
from synthflow.exposure_rules import argilla_exposures
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps._rows import column
from synthflow.steps.base import Executor, Row, Step, StepInput

_BULK = 500  # records per upsert request: Argilla refuses more
_TEXT = {"type": "text", "use_markdown": False}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _ArgillaStep(Step):
    """What both exports share: the connection, the dataset, and the upsert of records."""

    dataset_name: RuntimeParameter[str | None] = Field(
        default=None, description="The name of the Argilla dataset to send the rows to."
    )
    dataset_workspace: RuntimeParameter[str | None] = Field(
        default=None,
        description="The Argilla workspace of the dataset; default: the user's first workspace.",
    )
    api_url: RuntimeParameter[str | None] = Field(
        default_factory=lambda: os.environ.get("ARGILLA_API_URL"),
        description="The Argilla server's URL; default: ARGILLA_API_URL.",
    )
    api_key: RuntimeParameter[SecretStr | None] = Field(
        default_factory=lambda: _secret(os.environ.get("ARGILLA_API_KEY")),
        description="The Argilla API key; default: ARGILLA_API_KEY (never written to files).",
    )
    executor: Executor = Field(
        default="thread",
        description="Where process runs; 'thread' by default, as it waits on HTTP calls.",
    )

    _client: Any = PrivateAttr(default=None)
    _dataset_id: str | None = PrivateAttr(default=None)
    _question_ids: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def outputs(self) -> list[str]:
        return []

    # -- what each export defines --------------------------------------------------------------

    def _fields(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _questions(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _records(self, row: Row) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _column_name(self, name: str) -> str:
        """The Argilla field name for one of the step's inputs: the row's column, as mapped."""
        return self.input_mappings.get(name, name)

    # -- lifecycle -----------------------------------------------------------------------------

    def exposures(self, where: str) -> Iterator[Exposure]:
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        return argilla_exposures(where, {"api_url": self.api_url, "api_key": key}, {})

    def load(self) -> None:
        super().load()
        name = type(self).__name__
        if not self.dataset_name:
            raise ValueError(f"{name} needs dataset_name: pass dataset_name='<name>'")
        if not self.api_url or self.api_key is None:
            raise ValueError(
                f"{name} needs Argilla's api_url and api_key: pass them, or set "
                "ARGILLA_API_URL and ARGILLA_API_KEY"
            )
        import httpx

        headers = {"X-Argilla-Api-Key": self.api_key.get_secret_value()}
        token = os.environ.get("HF_TOKEN")
        if "hf.space" in self.api_url and token:  # a private Space asks for a Hub token too
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.api_url.rstrip("/"), headers=headers, timeout=60.0
        )
        try:
            workspace_id = self._workspace_id()
            self._dataset_id = self._find_dataset(workspace_id) or self._create_dataset(
                workspace_id
            )
            questions = self._call("GET", f"/api/v1/datasets/{self._dataset_id}/questions")
            self._question_ids = {q["name"]: q["id"] for q in questions.get("items", [])}
        except BaseException:
            self.unload()
            raise

    def unload(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        super().unload()

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        if self._client is None:
            raise RuntimeError(f"{type(self).__name__}: call load() before process()")
        records = [record for row in inputs for record in self._records(row)]
        for start in range(0, len(records), _BULK):
            self._call(
                "PUT",
                f"/api/v1/datasets/{self._dataset_id}/records/bulk",
                {"items": records[start : start + _BULK]},
            )
        yield inputs

    # -- the HTTP API ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ConnectionError(
                f"{type(self).__name__}: can't reach Argilla at {self.api_url}: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())}; check api_url"
            ) from None
        if response.status_code >= 400:
            hint = " (check api_key)" if response.status_code in (401, 403) else ""
            detail = " ".join(response.text.split())[:300]
            raise RuntimeError(
                f"{type(self).__name__}: Argilla answered {response.status_code} to {method} "
                f"{path}{hint}: {detail}"
            )
        return response.json() if response.content else None

    def _workspace_id(self) -> str:
        workspaces = self._call("GET", "/api/v1/me/workspaces").get("items", [])
        if self.dataset_workspace is None:
            if not workspaces:
                raise ValueError(
                    f"{type(self).__name__}: the Argilla user has no workspace; create one in "
                    "Argilla or set dataset_workspace"
                )
            return str(workspaces[0]["id"])
        for workspace in workspaces:
            if workspace["name"] == self.dataset_workspace:
                return str(workspace["id"])
        names = ", ".join(w["name"] for w in workspaces) or "none"
        raise ValueError(
            f"{type(self).__name__}: Argilla has no workspace {self.dataset_workspace!r} for "
            f"this user; set dataset_workspace to one of: {names}"
        )

    def _find_dataset(self, workspace_id: str) -> str | None:
        for dataset in self._call("GET", "/api/v1/me/datasets").get("items", []):
            if dataset["name"] == self.dataset_name and dataset["workspace_id"] == workspace_id:
                self._check_fields(str(dataset["id"]))
                return str(dataset["id"])
        return None

    def _check_fields(self, dataset_id: str) -> None:
        """An existing dataset is reused only if no required field would be left empty."""
        ours = {f["name"] for f in self._fields()}
        fields = self._call("GET", f"/api/v1/datasets/{dataset_id}/fields").get("items", [])
        alien = sorted(f["name"] for f in fields if f.get("required") and f["name"] not in ours)
        if alien:
            raise ValueError(
                f"{type(self).__name__}: Argilla dataset {self.dataset_name!r} exists with "
                f"required fields this step doesn't fill ({', '.join(alien)}); pick another "
                "dataset_name"
            )

    def _create_dataset(self, workspace_id: str) -> str:
        body = {
            "name": self.dataset_name,
            "workspace_id": workspace_id,
            "distribution": {"strategy": "overlap", "min_submitted": 1},
        }
        dataset_id = str(self._call("POST", "/api/v1/datasets", body)["id"])
        for field in self._fields():
            self._call("POST", f"/api/v1/datasets/{dataset_id}/fields", field)
        for question in self._questions():
            self._call("POST", f"/api/v1/datasets/{dataset_id}/questions", question)
        self._call("PUT", f"/api/v1/datasets/{dataset_id}/publish")
        return dataset_id

    def _suggestion(self, question: str, value: Any) -> dict[str, Any] | None:
        question_id = self._question_ids.get(question)
        if question_id is None:  # a reused dataset without that question
            return None
        return {"question_id": question_id, "value": value, "type": "model"}


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


def _text_field(name: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "title": name, "required": required, "settings": dict(_TEXT)}


def _instruction(step: str, row: Row) -> str:
    instruction = column(step, row, "instruction")
    if not isinstance(instruction, str):
        raise ValueError(
            f"{step}: column 'instruction' must hold a text, got {type(instruction).__name__}"
        )
    return instruction


class TextGenerationToArgilla(_ArgillaStep):
    """Sends instructions and their generations to an Argilla 2.x dataset, one record per
    distinct generation, for people to rate each as good or bad; the rows pass on unchanged.

    The dataset (created in ``load`` if ``dataset_workspace`` has none named ``dataset_name``)
    has the text fields ``id`` (the SHA-256 of the instruction), the instruction and the
    generation, named after the row's columns (as mapped by ``input_mappings``), and the label
    question ``quality`` (👎 ``bad`` / 👍 ``good``). An existing dataset is reused if every
    required field is one of those. Null generations are not sent.

    Input columns: ``instruction`` (str), ``generation`` (str, or a list of str).
    Output columns: none (the rows pass through unchanged).

    Fields (runtime parameters): ``dataset_name``, ``dataset_workspace`` (default: the user's
    first workspace), ``api_url`` (default ``ARGILLA_API_URL``), ``api_key`` (default
    ``ARGILLA_API_KEY``; a secret, never written to pipeline files). Runs on a thread
    (``executor="thread"``): it waits on HTTP calls.
    """

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generation"]

    def _fields(self) -> list[dict[str, Any]]:
        return [
            _text_field("id"),
            _text_field(self._column_name("instruction")),
            _text_field(self._column_name("generation")),
        ]

    def _questions(self) -> list[dict[str, Any]]:
        instruction = self._column_name("instruction")
        generation = self._column_name("generation")
        options = [{"value": "bad", "text": "👎"}, {"value": "good", "text": "👍"}]
        return [
            {
                "name": "quality",
                "title": f"Is the {generation} a good answer to the {instruction}?",
                "required": True,
                "settings": {"type": "label_selection", "options": options},
            }
        ]

    def _records(self, row: Row) -> list[dict[str, Any]]:
        name = type(self).__name__
        instruction = _instruction(name, row)
        generations = column(name, row, "generation")
        if not isinstance(generations, list):
            generations = [generations]
        records: list[dict[str, Any]] = []
        for generation in dict.fromkeys(g for g in generations if g is not None):
            if not isinstance(generation, str):
                raise ValueError(
                    f"{name}: column 'generation' must hold texts, got {type(generation).__name__}"
                )
            fields = {
                "id": _sha256(instruction),
                self._column_name("instruction"): instruction,
                self._column_name("generation"): generation,
            }
            external_id = _sha256(f"{instruction}\x00{generation}")
            records.append({"fields": fields, "external_id": external_id, "suggestions": []})
        return records


class PreferenceToArgilla(_ArgillaStep):
    """Sends instructions and several generations each to an Argilla 2.x dataset, one record per
    row, for people to rate every generation from 1 to 5 and say why; the rows pass on
    unchanged. Ratings and rationales already in the rows (a judge's, such as
    ``UltraFeedback``'s) are attached as suggestions the reviewers start from.

    The dataset (created in ``load`` if ``dataset_workspace`` has none named ``dataset_name``)
    has the text fields ``id`` (the SHA-256 of the instruction), the instruction, and
    ``generations-0`` ... ``generations-{num_generations - 1}`` (named after the mapped
    ``generations`` column; only the first is required), and per generation a rating question
    ``generations-{i}-rating`` (1 to 5) and a text question ``generations-{i}-rationale``. An
    existing dataset is reused if every required field is one of those.

    Input columns: ``instruction`` (str), ``generations`` (list of str); when present,
    ``ratings`` (list of int from 1 to 5; other values are not suggested) and ``rationales``
    (list of str).
    Output columns: none (the rows pass through unchanged).

    Fields: ``num_generations`` (generations per row, required), and the runtime parameters
    ``dataset_name``, ``dataset_workspace`` (default: the user's first workspace), ``api_url``
    (default ``ARGILLA_API_URL``), ``api_key`` (default ``ARGILLA_API_KEY``; a secret, never
    written to pipeline files). Runs on a thread (``executor="thread"``).
    """

    num_generations: int = Field(ge=1, description="Generations per row (fields in Argilla).")

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generations"]

    def _field_name(self, index: int) -> str:
        return f"{self._column_name('generations')}-{index}"

    def _fields(self) -> list[dict[str, Any]]:
        return [
            _text_field("id"),
            _text_field(self._column_name("instruction")),
            *(_text_field(self._field_name(i), i == 0) for i in range(self.num_generations)),
        ]

    def _questions(self) -> list[dict[str, Any]]:
        instruction = self._column_name("instruction")
        questions: list[dict[str, Any]] = []
        for i in range(self.num_generations):
            field = self._field_name(i)
            note = None if i == 0 else f"Skip it when {field} is empty."
            questions += [
                {
                    "name": f"{field}-rating",
                    "title": f"How good is {field} as an answer to the {instruction}? (1-5)",
                    "description": note,
                    "required": i == 0,
                    "settings": {"type": "rating", "options": [{"value": v} for v in range(1, 6)]},
                },
                {
                    "name": f"{field}-rationale",
                    "title": f"Why does {field} get that rating?",
                    "description": note,
                    "required": False,
                    "settings": dict(_TEXT),
                },
            ]
        return questions

    def _records(self, row: Row) -> list[dict[str, Any]]:
        name = type(self).__name__
        instruction = _instruction(name, row)
        generations = column(name, row, "generations")
        if not isinstance(generations, list):
            raise ValueError(
                f"{name}: column 'generations' must hold a list of texts, got "
                f"{type(generations).__name__}"
            )
        if len(generations) > self.num_generations:
            raise ValueError(
                f"{name}: a row has {len(generations)} generations and num_generations is "
                f"{self.num_generations}; set num_generations to the most a row holds"
            )
        fields = {"id": _sha256(instruction), self._column_name("instruction"): instruction}
        for i, generation in enumerate(generations):
            if generation is not None:
                fields[self._field_name(i)] = str(generation)
        suggestions = []
        ratings = row.get(self._column_name("ratings"))
        for i, rating in enumerate(ratings if isinstance(ratings, list) else []):
            if isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5:
                suggestions.append(self._suggestion(f"{self._field_name(i)}-rating", rating))
        rationales = row.get(self._column_name("rationales"))
        for i, rationale in enumerate(rationales if isinstance(rationales, list) else []):
            if isinstance(rationale, str) and rationale:
                suggestions.append(self._suggestion(f"{self._field_name(i)}-rationale", rationale))
        external_id = _sha256("\x00".join([instruction, *map(str, generations)]))
        return [
            {
                "fields": fields,
                "external_id": external_id,
                "suggestions": [s for s in suggestions if s is not None],
            }
        ]
