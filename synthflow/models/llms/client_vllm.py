"""ClientvLLM: an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp) with raw completion.

Chat calls go to ``/chat/completions`` as with ``OpenAILLM``. Magpie's user turns go to
``/completions`` with a raw prompt: the conversation in the model's chat format followed by the
pre-query template (``synthflow.models.llms.magpie``). Both take the API clients' call path
(limiter, retries, response cache, accounting).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import Field, PrivateAttr

from synthflow.errors import LLMError
from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType, GenerateOutput, NoAnswer, Usage
from synthflow.models.llms.magpie import (
    MagpieSettings,
    UserTurnWriter,
    load_tokenizer,
    user_turn_prompt,
)
from synthflow.models.llms.openai import OpenAILLM
from synthflow.runtime_parameters import RuntimeParameter


class ClientvLLM(OpenAILLM, MagpieSettings, UserTurnWriter):
    """A model served by vLLM (or any OpenAI-compatible server with ``/completions``).

    ``base_url`` is the server's OpenAI root (``http://localhost:8000/v1``; a bare
    ``http://host:port`` gets ``/v1``). ``model`` may be
    left out: ``load()`` asks the server (``GET {base_url}/models``) and uses the first model it
    serves. No API key is needed (``api_key`` is sent when given).

    For Magpie, set ``magpie_pre_query_template`` ('llama3', 'qwen2' or the text). A system
    prompt or earlier turns are rendered in the model's chat format: the Llama 3 and Qwen 2
    formats are known; another model needs ``tokenizer`` (its Hub id, with transformers
    installed). ``generation_kwargs``: ``max_new_tokens`` (sent as ``max_tokens``),
    ``temperature``, ``top_p``, ``frequency_penalty``, ``presence_penalty``, ``logit_bias``,
    ``stop``, ``seed``, and any other sampling parameter the server takes.
    """

    provider: ClassVar[str] = "vllm"
    default_base_url: ClassVar[str] = "http://localhost:8000/v1"
    api_key_env: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = None
    endpoint_form: ClassVar[str] = "openai_routes"

    model: str = Field(
        default="", description="The served model; the server's first model when unset."
    )
    tokenizer: str | None = Field(
        default=None,
        description="The model's tokenizer on the Hub, to render Magpie prompts in its chat "
        "format when the template is not 'llama3' or 'qwen2' (needs transformers).",
    )
    tokenizer_revision: str | None = Field(
        default=None, description="The tokenizer's revision on the Hub."
    )
    max_retries: RuntimeParameter[int] = Field(
        default=6, ge=0, description="Retries after a 429, 5xx, timeout or connection error."
    )

    _served_model: str = PrivateAttr(default="")
    _tokenizer: Any = PrivateAttr(default=None)

    @property
    def model_name(self) -> str:
        return self.model or self._served_model or self.endpoint

    def load(self) -> None:
        super().load()
        if not self.model and not self._served_model:
            self._served_model = _first_served_model(self.endpoint, self.resolved_api_key())
        # Only a template of another format needs the model's own chat template.
        if self.tokenizer and not self.renders_without_tokenizer() and self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer, self.tokenizer_revision)

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        path, payload = super().build_request(messages, num_generations)
        payload["model"] = self.model or self._served_model
        if not self._user_turns:
            return path, payload
        del payload["messages"]
        template = self.pre_query_template() or ""
        payload["prompt"] = user_turn_prompt(messages, template, self._tokenizer)
        return "/completions", payload

    def parse_response(self, data: Any) -> GenerateOutput:
        if not self._user_turns:
            return super().parse_response(data)
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        generations: list[str | None] = []
        no_answer: dict[int, NoAnswer] = {}
        for i, choice in enumerate(choices):
            text = choice.get("text")
            if not isinstance(text, str):
                finish = choice.get("finish_reason")
                no_answer[i] = NoAnswer("truncated" if finish == "length" else "empty", str(finish))
                text = None
            generations.append(text)
        usage = data.get("usage") or {}
        return GenerateOutput(
            generations=generations,
            usage=Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            ),
            no_answer=no_answer,
        )

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        return await self.raw_user_turns(messages, num_generations)  # the completions route


def _first_served_model(endpoint: str, api_key: str | None) -> str:
    """The id of the first model ``GET {endpoint}/models`` lists (``load()`` runs in a worker
    thread before the run, so a blocking request is fine here)."""
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/models")
    if api_key:
        request.add_header("authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = orjson.loads(response.read())
        return str(data["data"][0]["id"])
    except Exception as exc:
        raise LLMError(
            f"ClientvLLM can't ask {endpoint}/models which model it serves ({exc}); check "
            "base_url, or pass model=..."
        ) from None
