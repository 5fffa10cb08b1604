"""Local-model steps of a Ray run, served over HTTP instead of loaded by every shard.

A shard runs the whole pipeline; a step whose LLM is a local model (``vLLM(model=...)``) would
make every shard load its own copy of the model. On Ray, such a step is *served*: model-server
replicas start before the shards (``synthflow.distributed.model_servers``), and each shard's
copy of the step calls one of them through an OpenAI-compatible client, ``ClientvLLM``, with
the same prompts, generation settings (translated), output columns and ``model_name``.

What a server is started with and how a shard reaches it is decided here; nothing here needs
Ray. ``served_steps`` knows vLLM; another local class (``TransformersLLM``, ...) would follow by
adding its own ``_serve_*`` function to ``_SERVABLE``: the flags of its server and the client
settings that reproduce its calls.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import Field

from synthflow.errors import LLMConnectionError, PipelineValidationError
from synthflow.models.llms.base import CacheIdentity, ChatType, GenerateOutput
from synthflow.models.llms.client_vllm import ClientvLLM

if TYPE_CHECKING:
    from synthflow.models.llms.local.vllm import vLLM
    from synthflow.pipeline._validate import Plan
    from synthflow.steps.base import _Step

__all__ = [
    "PLAIN_CHAT_TEMPLATE",
    "VLLM_SERVER_COMMAND",
    "ModelServerSettings",
    "ServedClient",
    "ServedStep",
    "TokenizerSource",
    "served_plan",
    "served_steps",
]

VLLM_SERVER_COMMAND: tuple[str, ...] = (
    "{python}",
    "-m",
    "vllm.entrypoints.openai.api_server",
    "--model",
    "{model}",
    "--tensor-parallel-size",
    "{tensor_parallel_size}",
    "--host",
    "{host}",
    "--port",
    "{port}",
)
"""vLLM's OpenAI-compatible server. The model's other settings follow as flags."""

REPLICA_PAUSE_MAX = 30.0
"""The longest pause between a call's tries while its replica is being started again."""

PLAIN_CHAT_TEMPLATE = (
    "{{ bos_token | default('', true) }}"
    "{% for m in messages %}"
    "{{ m.role | default('user') | capitalize }}: "
    "{% if m.content is string %}{{ m.content }}"
    "{% elif m.content is iterable %}"
    "{% for p in m.content %}{% if p is mapping %}{{ p.text | default('') }}{% endif %}{% endfor %}"
    "{% endif %}"
    "{{ '\\n\\n' }}"
    "{% endfor %}"
    "Assistant:"
)
"""The in-process classes' fallback for a tokenizer without a chat template (the beginning of
text, then ``synthflow.models.llms.local.base.plain_prompt``), as a Jinja chat template for a
server. One line, newlines as expressions: chat templates render with ``trim_blocks``."""


@dataclass(frozen=True)
class ModelServerSettings:
    """How a Ray run serves its local-model steps: ``pipeline.ray(model_servers=...)``.

    The number of replicas of a step's server is the step's ``resources.replicas``; each
    replica reserves ``tensor_parallel_size`` bundles of ``bundle`` on one node.
    """

    command: tuple[str, ...] = VLLM_SERVER_COMMAND
    """The server's command line. ``{python}`` (this interpreter), ``{model}``,
    ``{tensor_parallel_size}``, ``{host}`` and ``{port}`` are filled in; the model's other
    settings are appended as flags (``--dtype bfloat16``...)."""
    bundle: Mapping[str, float] = field(default_factory=lambda: {"GPU": 1})
    """The resources of one tensor-parallel rank (``{"CPU": 1}`` serves on CPUs)."""
    startup_timeout: float = 1800.0
    """Seconds a server has to answer ``GET /v1/models`` (downloading and loading a model)."""
    placement_timeout: float = 600.0
    """Seconds to wait for the cluster to have a replica's bundles free."""
    restarts: int = 3
    """How many times a replica's server that exits mid-run is started again, on the same
    port; the shards' calls to it wait for it (up to ``startup_timeout``) rather than fail.
    Past that, the run stops with ``ModelServerError``."""

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("ModelServerSettings.command is empty: give the server's argv")
        if self.restarts < 0:
            raise ValueError(f"ModelServerSettings.restarts must be 0 or more, not {self.restarts}")
        if not self.bundle or any(v <= 0 for v in self.bundle.values()):
            raise ValueError(
                f"ModelServerSettings.bundle {dict(self.bundle)} needs positive amounts, "
                'e.g. {"GPU": 1}'
            )


class ServedClient(ClientvLLM):
    """The client of a served step: ``ClientvLLM`` whose answers are cached as the local
    class's would be (its ``cache_identity``), not by the replica's URL. A replica's port is
    new every run and any replica gives the same answers, so a run resumed, split otherwise, or
    run locally with the local class asks again for nothing it has."""

    local_identity: CacheIdentity | None = None
    replica_wait: float = Field(default=0.0, ge=0, exclude=True)
    """Seconds a call keeps trying while its replica can't be reached: its actor is starting
    the server again (``synthflow.distributed.model_servers``)."""

    def cache_identity(self) -> CacheIdentity:
        return self.local_identity or super().cache_identity()

    async def _request(self, messages: ChatType, num_generations: int) -> GenerateOutput:
        # A replica that can't be reached after the usual retries is being started again
        # (which may take as long as loading the model): its calls wait for it, with backoff,
        # rather than fail their rows. The driver stops the run if it can't come back. Its URL
        # answered before the shards started, so "never answered here" is no wrong address.
        deadline: float | None = None
        pause = 1.0
        while True:
            try:
                return await super()._request(messages, num_generations)
            except LLMConnectionError:
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.replica_wait
                if now >= deadline:
                    raise
                await anyio.sleep(min(pause, deadline - now))
                pause = min(pause * 2, REPLICA_PAUSE_MAX)


@dataclass(frozen=True)
class ServedStep:
    """One served step: what its servers run, and the client each shard calls them with."""

    step: str
    model: str
    tensor_parallel_size: int
    replicas: int
    flags: tuple[str, ...]
    client: ServedClient
    """The client for the step; ``base_url`` is filled in per replica (``client_at``)."""
    chat_template: str | None = None
    """A Jinja chat template replacing the tokenizer's; the server reads it from a file (vLLM
    unescapes a template given inline, which changes backslashes and non-ASCII text)."""
    tokenizer: TokenizerSource | None = None
    """Where the model's tokenizer is, when the local class falls back to the plain template
    for one without a chat template: the server (on its node) checks, and serves
    ``PLAIN_CHAT_TEMPLATE`` then."""

    def command(
        self, template: tuple[str, ...], host: str, port: int, chat_template_file: str | None
    ) -> list[str]:
        """The server's argv for one replica listening on ``host:port``, reading the chat
        template (if any) from ``chat_template_file``."""
        values = {
            "python": sys.executable,
            "model": self.model,
            "tensor_parallel_size": self.tensor_parallel_size,
            "host": host,
            "port": port,
        }
        argv = [part.format(**values) for part in template] + list(self.flags)
        if chat_template_file is not None:
            argv += ["--chat-template", chat_template_file]
        return argv

    def client_at(self, url: str, replica_wait: float = 0.0) -> ServedClient:
        """The client calling the replica at ``url`` (``http://host:port``), waiting up to
        ``replica_wait`` seconds for it while it can't be reached."""
        update = {"base_url": f"{url.rstrip('/')}/v1", "replica_wait": replica_wait}
        return self.client.model_copy(update=update)

    def with_plain_template(self) -> ServedStep:
        """This step as served with ``PLAIN_CHAT_TEMPLATE``: its answers end where the local
        class's do under that template (``PLAIN_PROMPT_STOP`` added to the stop strings)."""
        from synthflow.models.llms.local.base import PLAIN_PROMPT_STOP

        kwargs = dict(self.client.generation_kwargs)
        kwargs["stop"] = [*kwargs.get("stop", []), PLAIN_PROMPT_STOP]
        client = self.client.model_copy(update={"generation_kwargs": kwargs})
        return replace(self, client=client, chat_template=PLAIN_CHAT_TEMPLATE, tokenizer=None)


@dataclass(frozen=True)
class TokenizerSource:
    """A model's tokenizer files, in a directory or on the Hub."""

    name: str
    revision: str | None = None

    def has_chat_template(self) -> bool:
        """Whether the tokenizer has a chat template, read from its files (a directory, or the
        Hub through ``huggingface_hub``); True when it can't be told (the files unreachable):
        the server then uses whatever it finds."""
        config = self._read("tokenizer_config.json")
        if config is None:
            return True
        if self._read("chat_template.jinja") or self._read("chat_template.json"):
            return True
        return bool(json.loads(config).get("chat_template"))

    def _read(self, filename: str) -> str | None:
        directory = Path(self.name)
        if directory.is_dir():
            path = directory / filename
            return path.read_text(encoding="utf-8") if path.is_file() else None
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            return None
        try:
            found = hf_hub_download(self.name, filename, revision=self.revision)
        except Exception:  # not there, or no way to know: the same to a caller
            return None
        return Path(found).read_text(encoding="utf-8")


def served_steps(steps: Mapping[str, _Step]) -> dict[str, ServedStep]:
    """The steps whose LLM is a local model that servers can run, by step name. A setting that
    does not map onto a server raises a one-line ``PipelineValidationError`` naming the step."""
    served: dict[str, ServedStep] = {}
    for name, step in steps.items():
        llm = getattr(step, "llm", None)
        for kind, serve in _servable():
            if isinstance(llm, kind):
                served[name] = serve(name, step, llm)
                break
    return served


def served_plan(
    plan: Plan,
    served: Mapping[str, ServedStep],
    endpoints: Mapping[str, list[str]],
    shard: int,
    replica_wait: float = 0.0,
) -> Plan:
    """``plan`` with every served step calling a replica of its server (``endpoints``: the
    replicas' URLs by step): shard ``shard`` gets replica ``shard % replicas``, so the shards
    spread evenly over the replicas; a call waits up to ``replica_wait`` seconds for a replica
    being started again."""
    steps = dict(plan.steps)
    names = [name for name in served if name in steps]
    for name in names:
        urls = endpoints[name]
        client = served[name].client_at(urls[shard % len(urls)], replica_wait)
        # An HTTP client waits, it doesn't compute: the step runs on the event loop.
        update = {"llm": client, "executor": "loop", "workers": 1}
        steps[name] = steps[name].model_copy(update=update)
    return replace(plan, steps=steps) if names else plan


# -- vLLM ----------------------------------------------------------------------------------------


def _servable() -> list[tuple[type, Callable[[str, Any, Any], ServedStep]]]:
    from synthflow.models.llms.local.vllm import vLLM

    return [(vLLM, _serve_vllm)]


# vLLM's SamplingParams fields the OpenAI-compatible server takes beside the OpenAI ones.
_VLLM_EXTRA_SAMPLING = (
    "top_k",
    "min_p",
    "repetition_penalty",
    "min_tokens",
    "stop_token_ids",
    "include_stop_str_in_output",
    "ignore_eos",
    "skip_special_tokens",
)
_OPENAI_SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
# Taken by the local class without changing what it writes (it keeps no logprobs).
_DROPPED = ("echo", "logprobs", "prompt_logprobs")


def _serve_vllm(name: str, step: Any, llm: vLLM) -> ServedStep:
    gpus = step.resources.gpus
    if gpus is not None and gpus != llm.tensor_parallel_size:
        raise PipelineValidationError(
            f"step {name!r}: resources.gpus={gpus} but its vLLM has tensor_parallel_size="
            f"{llm.tensor_parallel_size}; a served replica takes tensor_parallel_size GPUs: "
            "make them equal"
        )
    magpie = llm.use_magpie_template or llm.magpie_pre_query_template
    if magpie and llm.chat_template is not None:
        raise PipelineValidationError(
            f"step {name!r}: Magpie with a custom chat_template can't be served on Ray "
            "(the client renders the user-turn prompt with the tokenizer's own template): "
            "drop chat_template or run with backend='local'"
        )
    client = ServedClient(
        local_identity=llm.cache_identity(),
        model=llm.model,
        generation_kwargs=vllm_request_kwargs(name, llm.generation_kwargs),
        structured_output=llm.structured_output,
        structured_retries=llm.structured_retries,
        use_magpie_template=llm.use_magpie_template,
        magpie_pre_query_template=llm.magpie_pre_query_template,
        tokenizer=llm.tokenizer or llm.model,
        tokenizer_revision=llm.revision,
        # What the local class hands its engine at once is what one server is sent at once.
        max_concurrency=llm.max_batch_size,
        timeout=600.0,
    )
    return ServedStep(
        step=name,
        model=llm.model,
        tensor_parallel_size=llm.tensor_parallel_size,
        replicas=step.resources.replicas,
        flags=tuple(vllm_server_flags(llm)),
        client=client,
        chat_template=llm.chat_template,
        tokenizer=None
        if llm.chat_template is not None
        else TokenizerSource(llm.tokenizer or llm.model, llm.revision),
    )


def vllm_server_flags(llm: vLLM) -> list[str]:
    """The server flags for ``llm``'s engine settings (model, tensor parallelism and chat
    template aside): what ``vLLM.engine_arguments()`` gives the offline engine, in the server's
    spelling. A setting left at None or False is left to the server's default, but a False in
    ``engine_kwargs`` was asked for: it is sent as ``--no-<name>`` (vLLM's negative flags)."""
    arguments = llm.engine_arguments()
    for key in ("model", "tensor_parallel_size"):
        arguments.pop(key, None)
    flags: list[str] = []
    for key, value in arguments.items():
        flag = "--" + key.replace("_", "-")
        if value is False and key in llm.engine_kwargs:
            flags.append("--no-" + key.replace("_", "-"))
        elif value is None or value is False:
            continue
        elif value is True:
            flags.append(flag)
        elif isinstance(value, dict | list):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def vllm_request_kwargs(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``vLLM.generation_kwargs`` as the OpenAI-compatible request's: the fields the local class
    puts in ``SamplingParams``, with the same defaults (``max_tokens`` 512, ``do_sample=False``
    as temperature 0); vLLM's own sampling fields go in ``extra_body``."""
    from synthflow.models.llms.local.base import DEFAULT_MAX_NEW_TOKENS, stop_list

    given = dict(kwargs)
    given.update(given.pop("extra_sampling_params", None) or {})
    if "logits_processors" in given:
        raise PipelineValidationError(
            f"step {name!r}: logits_processors are Python callables and can't be sent to a "
            "model server: drop them or run with backend='local'"
        )
    for key in _DROPPED:
        given.pop(key, None)
    request: dict[str, Any] = {
        "max_new_tokens": given.pop("max_new_tokens", None)
        or given.pop("max_tokens", None)
        or DEFAULT_MAX_NEW_TOKENS
    }
    given.pop("max_tokens", None)
    if given.pop("do_sample", True) is False:
        given["temperature"] = 0.0
    stops = stop_list(given.pop("stop", None))
    if stops:
        request["stop"] = stops
    for key in _OPENAI_SAMPLING:
        if key in given:
            request[key] = given.pop(key)
    extra = {key: given.pop(key) for key in _VLLM_EXTRA_SAMPLING if key in given}
    extra.update(given)  # any other SamplingParams field: the server takes it by its name
    if extra:
        request["extra_body"] = extra
    return request
