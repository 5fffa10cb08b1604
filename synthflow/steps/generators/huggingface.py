"""distilabel's module path ``distilabel.steps.generators.huggingface``: its Hub, file-system
and disk loaders, which live in ``synthflow.steps.generators`` and ``synthflow.steps.sources``."""

from synthflow.steps.generators import LoadDataFromFileSystem, LoadDataFromHub
from synthflow.steps.sources import LoadDataFromDisk

__all__ = ["LoadDataFromDisk", "LoadDataFromFileSystem", "LoadDataFromHub"]
