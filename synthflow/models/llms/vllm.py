"""distilabel's module path ``distilabel.models.llms.vllm``: the classes of
``synthflow.models.llms.local.vllm``, ``synthflow.models.llms.client_vllm``."""

from synthflow.models.llms.client_vllm import ClientvLLM
from synthflow.models.llms.local.vllm import vLLM

__all__ = ["ClientvLLM", "vLLM"]
