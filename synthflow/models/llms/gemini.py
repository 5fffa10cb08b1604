"""Google's Gemini ``generateContent`` API: the Gemini Developer API and Vertex AI.

Both take the same request body and answer with the same response body; they differ only in the
URL and the credentials. Chat messages in synthflow's (OpenAI's) shape are mapped to Gemini's:

- ``system`` (and ``developer``) messages become ``systemInstruction``; ``assistant`` turns
  have the role ``model``.
- Content parts: ``text``; ``image_url`` with a ``data:`` URL becomes ``inlineData``, any other URL
  ``fileData`` (a ``gs://`` or Files API URI, its MIME type guessed from the file extension). A
  part without a ``type`` is taken as a native Gemini part (``inlineData`` for audio, video, PDF).

Generation kwargs use synthflow's names (``temperature``, ``top_p``, ``top_k``,
``max_new_tokens``, ``stop``, ``seed``, ``presence_penalty``, ``frequency_penalty``, ``logprobs``,
``top_logprobs``) or ``generationConfig``'s own in snake_case (``thinking_config``,
``response_modalities``, ``max_output_tokens``...; see ``GeminiGenerationKwargs``) and go into
``generationConfig`` in Gemini's camelCase, except ``safety_settings`` (a list, or
distilabel's ``{category: threshold}`` mapping), ``cached_content``, ``labels``, ``tools`` and
``tool_config``, which are top-level request fields. A kwarg set to None is left out; a field
synthflow doesn't know goes in ``extra_body`` (merged into the request body).

Structured output is native: ``responseMimeType: application/json`` plus ``responseSchema``,
Gemini's dialect of JSON schema (see ``gemini_schema`` for what it keeps, drops and can't say).
Every answer is still validated, and re-asked when it doesn't follow the schema.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict
from urllib.parse import urlparse

import orjson
from pydantic import Field

from synthflow.errors import LLMEmptyAnswerError, LLMError, LLMStatusError
from synthflow.models.callpath._http import HTTPClient, JSONResponse
from synthflow.models.llms.api import APILLM, Payload
from synthflow.models.llms.base import (
    CacheIdentity,
    ChatType,
    GenerateOutput,
    NoAnswer,
    NoAnswerKind,
    Usage,
)
from synthflow.models.llms.generation_kwargs import Stop

# synthflow's generation kwarg -> the generationConfig field. Other keys are camel-cased.
_CONFIG_NAMES = {
    "max_new_tokens": "maxOutputTokens",
    "max_tokens": "maxOutputTokens",
    "stop": "stopSequences",
    "top_logprobs": "logprobs",
}
_TOP_LEVEL = frozenset({"safetySettings", "cachedContent", "labels", "tools", "toolConfig"})


class GeminiGenerationKwargs(TypedDict, total=False):
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    max_tokens: int
    max_output_tokens: int
    stop: Stop
    stop_sequences: list[str]
    seed: int
    presence_penalty: float
    frequency_penalty: float
    logprobs: bool | int
    top_logprobs: int
    response_logprobs: bool
    response_mime_type: str
    response_modalities: list[str]
    thinking_config: dict[str, Any]
    speech_config: dict[str, Any]
    media_resolution: str
    enable_enhanced_civic_answers: bool
    safety_settings: list[dict[str, Any]] | dict[str, Any]
    cached_content: str
    labels: dict[str, str]
    tools: list[dict[str, Any]]
    tool_config: dict[str, Any]
    extra_body: dict[str, Any]


class GeminiLLM(APILLM):
    """The Gemini Developer API (``POST {base_url}/v1beta/models/{model}:generateContent``).

    The API key is read from ``GEMINI_API_KEY``, then ``GOOGLE_API_KEY``. Several generations
    are one request (``candidateCount``); ``logprobs=True`` (and ``top_logprobs=k``) ask for
    ``responseLogprobs``, returned per generation as Gemini's ``logprobsResult``. Output tokens
    include thinking tokens (``thoughtsTokenCount``): they are billed as output. A 429 whose
    body carries a ``RetryInfo`` delay (Gemini sends no ``Retry-After`` header) waits that long.
    """

    limit_per_model: ClassVar[bool] = True  # Gemini quotas are per model and key
    provider: ClassVar[str] = "gemini"
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com"
    api_key_env: ClassVar[str | None] = "GEMINI_API_KEY"
    api_key_envs: ClassVar[tuple[str, ...]] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    supports_n: ClassVar[bool] = True
    generation_kwargs_spec: ClassVar[type | None] = GeminiGenerationKwargs

    api_version: str = Field(default="v1beta", description="The API version in the URL.")

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return next((os.environ[e] for e in self.api_key_envs if os.environ.get(e)), None)

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": api_key} if api_key else {}

    def model_path(self) -> str:
        name = self.model if "/" in self.model else f"models/{self.model}"  # or tunedModels/...
        return f"/{self.api_version}/{name}"

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload = _contents(messages, type(self).__name__)
        config: Payload = {}
        for key, value in self.body_kwargs():
            if value is None:
                continue
            if key == "safety_settings" and isinstance(value, dict):  # Vertex SDK's shape
                value = [{"category": c, "threshold": t} for c, t in value.items()]
            if key == "logprobs" and isinstance(value, bool):
                name = "responseLogprobs"
            else:  # an int ``logprobs`` is Gemini's own: the number of top tokens
                name = _CONFIG_NAMES.get(key, _camel(key))
            if name == "stopSequences" and isinstance(value, str):
                value = [value]
            (payload if name in _TOP_LEVEL else config)[name] = value
        if "logprobs" in config:
            config.setdefault("responseLogprobs", True)
        if num_generations != 1:
            config["candidateCount"] = num_generations
        if self.structured_output is not None:
            config["responseMimeType"] = "application/json"
            schema = gemini_schema(self.structured_output)
            if schema is not None:
                config["responseSchema"] = schema
        if config:
            payload["generationConfig"] = config
        return f"{self.model_path()}:generateContent", payload

    def parse_response(self, data: Any) -> GenerateOutput:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        candidates = data.get("candidates") or []
        reason = (data.get("promptFeedback") or {}).get("blockReason")
        if not candidates and reason:  # the same prompt would be blocked again: no retry
            raise LLMEmptyAnswerError(
                f"{type(self).__name__}: the prompt was blocked ({reason}); reword it or "
                "change safety_settings (not cached: a re-run asks again)",
                reasons=(f"prompt blocked ({reason})",),
            )
        candidates = sorted(candidates, key=lambda c: c.get("index", 0))
        generations: list[str | None] = []
        no_answer: dict[int, NoAnswer] = {}
        for i, candidate in enumerate(candidates):
            text, why = _read_candidate(candidate)
            generations.append(text)
            if why is not None:
                no_answer[i] = why
        logprobs = [c.get("logprobsResult") for c in candidates]
        usage = data.get("usageMetadata") or {}
        output_tokens = int(usage.get("candidatesTokenCount") or 0)
        output_tokens += int(usage.get("thoughtsTokenCount") or 0)
        return GenerateOutput(
            generations=generations,
            usage=Usage(int(usage.get("promptTokenCount") or 0), output_tokens),
            logprobs=logprobs if any(lp is not None for lp in logprobs) else None,
            no_answer=no_answer,
        )

    def _client(self) -> HTTPClient:
        if self._http is None:
            key = self.resolved_api_key()
            self._http = _GoogleHTTPClient(self.endpoint, timeout=self.timeout, secret=key)
        return self._http


class VertexAILLM(GeminiLLM):
    """Gemini on Vertex AI: ``POST https://{location}-aiplatform.googleapis.com/v1/projects/
    {project}/locations/{location}/publishers/google/models/{model}:generateContent``.

    ``project`` defaults to ``GOOGLE_CLOUD_PROJECT``. Authentication is an OAuth access token
    sent as ``Authorization: Bearer``: pass it as ``api_key`` or set ``VERTEX_ACCESS_TOKEN``,
    e.g. ``export VERTEX_ACCESS_TOKEN=$(gcloud auth print-access-token)``. synthflow does not
    depend on google-auth and does not refresh the token: such a token lasts about an hour, and
    calls made after it expires fail with 401 (not retried). Rows that failed that way are asked
    again by the next run, with a fresh token; the answered ones come from the response cache.
    """

    provider: ClassVar[str] = "vertexai"
    default_base_url: ClassVar[str] = ""
    api_key_env: ClassVar[str | None] = "VERTEX_ACCESS_TOKEN"
    api_key_envs: ClassVar[tuple[str, ...]] = ("VERTEX_ACCESS_TOKEN",)

    project: str | None = Field(
        default=None, description="Google Cloud project id; GOOGLE_CLOUD_PROJECT when unset."
    )
    location: str = Field(default="us-central1", description="Vertex AI region, or 'global'.")
    api_version: str = Field(default="v1", description="The API version in the URL.")

    @property
    def endpoint(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.location == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{self.location}-aiplatform.googleapis.com"

    def provider_hosts(self) -> tuple[str, ...]:
        hosts = ["aiplatform.googleapis.com"]
        if re.fullmatch(r"[a-z0-9-]+", self.location):  # else the URL isn't Google's
            hosts.append(f"{self.location}-aiplatform.googleapis.com")
        return tuple(hosts)

    def resolved_project(self) -> str | None:
        return self.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None

    def requires_api_key(self) -> bool:
        return self.base_url is None

    def load(self) -> None:
        if self.requires_api_key() and self.resolved_api_key() is None:
            raise LLMError(
                "VertexAILLM needs an access token: pass api_key=... or set VERTEX_ACCESS_TOKEN "
                "(from `gcloud auth print-access-token`)"
            )
        if self.resolved_project() is None:
            raise LLMError(
                "VertexAILLM needs a project: pass project=... or set GOOGLE_CLOUD_PROJECT"
            )

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def cache_identity(self) -> CacheIdentity:
        # Another project or region is another source of answers.
        identity = super().cache_identity()
        return identity._replace(endpoint=f"{identity.endpoint}{self.model_path()}")

    def model_path(self) -> str:
        return (
            f"/{self.api_version}/projects/{self.resolved_project()}/locations/{self.location}"
            f"/publishers/google/models/{self.model}"
        )


# -- messages -------------------------------------------------------------------------------


def _contents(messages: ChatType, who: str) -> Payload:
    system: list[Payload] = []
    contents: list[Payload] = []
    for message in messages:
        role = message.get("role")
        parts = _parts(message.get("content"), who)
        if role in ("system", "developer"):
            system.extend(parts)
        elif role in ("user", "assistant", "model"):
            if not parts:  # Gemini rejects empty parts (an empty answer being re-asked)
                continue
            gemini_role = "user" if role == "user" else "model"
            if contents and contents[-1]["role"] == gemini_role:
                contents[-1]["parts"].extend(parts)  # one turn per run of messages of a role
            else:
                contents.append({"role": gemini_role, "parts": parts})
        else:
            raise LLMError(f"{who} can't send a message with role {role!r}")
    payload: Payload = {"contents": contents}
    if system:
        payload["systemInstruction"] = {"parts": system}
    return payload


def _parts(content: Any, who: str) -> list[Payload]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[Payload] = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else "text"
        if kind == "text":
            text = item if isinstance(item, str) else item.get("text")
            if text:
                parts.append({"text": text})
        elif kind == "image_url":
            parts.append(_image_part(item["image_url"], who))
        elif kind is None:
            parts.append(item)  # a native Gemini part
        else:
            raise LLMError(f"{who} can't send a {kind!r} content part")
    return parts


def _image_part(image: Any, who: str) -> Payload:
    url = image["url"] if isinstance(image, dict) else str(image)
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if not header.endswith(";base64"):
            raise LLMError(f"{who} takes data URLs in base64 (data:image/png;base64,...)")
        return {"inlineData": {"mimeType": header[5:].split(";")[0], "data": data}}
    mime = mimetypes.guess_type(urlparse(url).path)[0]
    if mime is None:
        raise LLMError(
            f"{who} can't tell the MIME type of {url}: send a native part "
            "{'fileData': {'mimeType': ..., 'fileUri': ...}} instead"
        )
    return {"fileData": {"mimeType": mime, "fileUri": url}}


_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "LANGUAGE",
    }
)
"""Finish reasons that stop a candidate for what it says: its text (if any) is not an answer."""


def _read_candidate(candidate: Payload) -> tuple[str | None, NoAnswer | None]:
    finish = candidate.get("finishReason")
    if finish in _FILTERED:
        return None, NoAnswer("filtered", f"finishReason {finish}")
    parts = (candidate.get("content") or {}).get("parts") or []
    texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
    if texts:
        return "".join(texts), None
    kind: NoAnswerKind = "truncated" if finish == "MAX_TOKENS" else "empty"
    return None, NoAnswer(kind, f"finishReason {finish}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


# -- structured output ----------------------------------------------------------------------

_KEEP = frozenset(
    {
        "description",
        "nullable",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minProperties",
        "maxProperties",
    }
)
_FORMATS = {
    "STRING": {"date-time", "enum"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}


class _Unsupported(Exception):
    pass


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``schema`` in the dialect of Gemini's ``responseSchema`` (a subset of OpenAPI 3.0), or
    None when it can't be said there.

    Local ``$ref``s (``$defs``) are inlined; ``anyOf`` with ``null`` and type lists with
    ``null`` become ``nullable``; ``const`` becomes a one-value ``enum``; every object gets a
    ``propertyOrdering`` in declaration order (Gemini otherwise orders keys alphabetically).
    Dropped, because Gemini rejects or ignores them: ``title``, ``default``, ``examples``,
    ``additionalProperties``, ``exclusiveMinimum``/``Maximum``, ``multipleOf``, ``uniqueItems``,
    ``enum``/``const`` with non-string values, and ``format``s other than ``date-time`` and
    ``enum`` (strings), ``float``/``double`` and ``int32``/``int64``. Can't be said at all:
    recursive schemas, objects without ``properties`` (free-form dicts), arrays without
    ``items``, ``allOf`` of several schemas, and ``{}`` (any value). Then only
    ``responseMimeType: application/json`` is sent, and the schema is enforced by validation
    and re-asks alone.
    """
    try:
        return _convert(schema, schema, ())
    except _Unsupported:
        return None


def _convert(node: Any, root: dict[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise _Unsupported
    node = dict(node)
    if "$ref" in node:
        ref = node.pop("$ref")
        if ref in refs:
            raise _Unsupported  # recursive
        return _convert({**_resolve(ref, root), **node}, root, (*refs, ref))
    if "allOf" in node:
        parts = node.pop("allOf")
        if not isinstance(parts, list) or len(parts) != 1:
            raise _Unsupported
        return _convert({**parts[0], **node}, root, refs)

    options = node.pop("anyOf", None) or node.pop("oneOf", None)
    kinds = node.get("type")
    if isinstance(kinds, list):  # ["string", "null"], ["string", "integer"]
        node.pop("type")
        options = [{**node, "type": kind} for kind in kinds]
    if options is not None:
        return _convert_options(options, node, root, refs)

    out: dict[str, Any] = {}
    kind = _type_of(node)
    out["type"] = kind
    if "format" in node and node["format"] in _FORMATS.get(kind, ()):
        out["format"] = node["format"]
    values = [node["const"]] if "const" in node else node.get("enum")
    if values is not None and all(isinstance(v, str) for v in values):
        out["enum"] = list(values)
    for key in _KEEP & node.keys():
        out[key] = node[key]
    if kind == "OBJECT":
        properties = node.get("properties")
        if not properties:
            raise _Unsupported  # free-form object
        out["properties"] = {k: _convert(v, root, refs) for k, v in properties.items()}
        out["propertyOrdering"] = list(properties)
        required = [name for name in node.get("required", []) if name in properties]
        if required:
            out["required"] = required
    elif kind == "ARRAY":
        if "items" not in node:
            raise _Unsupported
        out["items"] = _convert(node["items"], root, refs)
    return out


def _convert_options(
    options: list[Any], node: dict[str, Any], root: dict[str, Any], refs: tuple[str, ...]
) -> dict[str, Any]:
    rest = {k: v for k, v in node.items() if k in ("description", "title")}
    present = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
    if not present:
        raise _Unsupported  # only null
    if len(present) == 1:
        out = _convert({**present[0], **rest}, root, refs)
    else:
        out = {"anyOf": [_convert(o, root, refs) for o in present]}
        if "description" in rest:
            out["description"] = rest["description"]
    if len(present) < len(options):
        out["nullable"] = True
    return out


def _type_of(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, str) and kind.upper() in ("STRING", "NUMBER", "INTEGER", "BOOLEAN"):
        return kind.upper()
    if kind in ("object", "OBJECT") or (kind is None and "properties" in node):
        return "OBJECT"
    if kind in ("array", "ARRAY") or (kind is None and "items" in node):
        return "ARRAY"
    if kind is None and ("enum" in node or "const" in node):
        values = [node["const"]] if "const" in node else node["enum"]
        if all(isinstance(v, str) for v in values):
            return "STRING"
    raise _Unsupported


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise _Unsupported  # a remote reference
    target: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(target, dict) or part not in target:
            raise _Unsupported
        target = target[part]
    if not isinstance(target, dict):
        raise _Unsupported
    return target


# -- 429s -----------------------------------------------------------------------------------


class _GoogleHTTPClient(HTTPClient):
    """Google APIs answer 429 with the wait in the body (``RetryInfo.retryDelay``, like
    ``"37s"``), not in a ``Retry-After`` header; copy it there for the retry and the limiter."""

    async def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        try:
            return await super().post_json(path, payload, headers)
        except LLMStatusError as exc:
            if exc.status_code == 429 and "retry-after" not in exc.headers:
                delay = retry_delay(exc.body)
                if delay is not None:
                    exc.headers["retry-after"] = f"{delay:g}"
            raise


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_delay(body: str) -> float | None:
    """Seconds from the ``RetryInfo`` detail of a Google API error body, or None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
