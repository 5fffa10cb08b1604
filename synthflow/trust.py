"""What a pipeline loaded from a file or URL may do without the user's say-so.

A pipeline built in Python is the user's own and is not restricted. One loaded from YAML/JSON
may have been written by anyone, so before it runs (before any request is sent or file read):

- a key from the environment goes only to the provider's own host, to the host the user named
  (the provider's base-URL variable such as ``OPENAI_BASE_URL``, or a URL the user set after
  loading, e.g. ``--param generate.llm.base_url=...``), or to a host the user trusts
  (``--trust-endpoint HOST``, ``pipeline.trust(endpoints=[HOST])``). A key written in the
  file itself, or no key at all (a local server), goes wherever the file says;
- a local path outside the working directory is read or written only under a directory the
  user allowed (``--allow-path DIR``, ``pipeline.trust(paths=[DIR])``), unless the user set
  that path after loading;
- ``trust_remote_code: true`` (a model repo's own Python code) needs ``--trust-remote-code``
  (``pipeline.trust(remote_code=True)``).

The file's own settings are recorded when it loads; what the user changes afterwards is theirs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from synthflow.audit import DataAccess, Endpoint, Exposure, ForeignCode, host_of, pipeline_exposures
from synthflow.errors import UntrustedPipelineError

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class LoadedTrust:
    """The restrictions on one loaded pipeline, and what the user allowed."""

    source: str
    file_urls: frozenset[str] = frozenset()
    """Endpoint URLs (``base_url``) as the file set them."""
    file_targets: frozenset[str] = frozenset()
    """Paths and URLs as the file set them."""
    endpoints: frozenset[str] = frozenset()
    """Hosts the user trusts with keys from the environment."""
    paths: tuple[str, ...] = ()
    """Directories (besides the working directory) the user allows."""
    remote_code: bool = False

    @classmethod
    def record(cls, steps: Mapping[str, BaseModel], source: str) -> LoadedTrust:
        """The trust state of a pipeline just loaded from ``source``: nothing allowed yet."""
        return cls.of_exposures(pipeline_exposures(steps), source)

    @classmethod
    def of_exposures(cls, found: Iterable[Exposure], source: str) -> LoadedTrust:
        """The same, from what the loaded pipeline reaches (``synthflow.audit``)."""
        found = list(found)
        urls = {e.setting for e in found if isinstance(e, Endpoint) and e.setting is not None}
        data = {e.target for e in found if isinstance(e, DataAccess)}
        return cls(source, frozenset(urls), frozenset(data))

    def allowing(
        self,
        endpoints: Iterable[str] = (),
        paths: Iterable[str | os.PathLike[str]] = (),
        remote_code: bool = False,
    ) -> LoadedTrust:
        hosts = {host_of(h) if "://" in h else h.strip().lower() for h in endpoints}
        return replace(
            self,
            endpoints=self.endpoints | hosts,
            paths=(*self.paths, *(os.path.abspath(Path(p).expanduser()) for p in paths)),
            remote_code=self.remote_code or remote_code,
        )

    def problems(self, steps: Mapping[str, BaseModel], reads_only: bool = False) -> list[str]:
        """One line per thing the pipeline would do that needs the user's permission
        (``reads_only``: the paths it would read)."""
        return self.problems_in(pipeline_exposures(steps), reads_only)

    def problems_in(self, found: Iterable[Exposure], reads_only: bool = False) -> list[str]:
        """The same, from what the pipeline reaches (``synthflow.audit``)."""
        out: list[str] = []
        for item in found:
            if reads_only and not isinstance(item, DataAccess):
                continue
            problem = self._problem(item)
            if problem and problem not in out:
                out.append(problem)
        return out

    def check(self, steps: Mapping[str, BaseModel], reads_only: bool = False) -> None:
        """Raise ``UntrustedPipelineError`` (the first problem, and how many more) if the
        pipeline would do anything the user hasn't allowed."""
        found = self.problems(steps, reads_only)
        if found:
            more = (
                f" (and {len(found) - 1} more: `synthflow pipeline info` lists them)"
                if len(found) > 1
                else ""
            )
            raise UntrustedPipelineError(f"{found[0]}{more}")

    def _problem(self, item: Exposure) -> str | None:
        if isinstance(item, Endpoint):
            return self._endpoint_problem(item)
        if isinstance(item, DataAccess):
            return self._path_problem(item)
        if (
            isinstance(item, ForeignCode)
            and item.what == "trust_remote_code"
            and not (self.remote_code)
        ):
            return (
                f"{_who(item.where)} sets trust_remote_code: true in {self.source}, which runs the "
                "model repo's own Python code; allow it with --trust-remote-code "
                "(Python: pipeline.trust(remote_code=True))"
            )
        return None

    def _endpoint_problem(self, ep: Endpoint) -> str | None:
        if ep.key_env is None:
            return None  # no key of the user's goes with it
        host = ep.host
        if host in ep.own_hosts or host in self.endpoints:
            return None
        if ":" in host and host.rsplit(":", 1)[0] in self.endpoints:
            return None  # a trusted host without a port: any of its ports
        named = os.environ.get(ep.url_env) if ep.url_env else None
        if named and host_of(named) == host:
            return None
        if ep.setting is not None and ep.setting not in self.file_urls:
            return None  # the user set this URL after loading
        if not host:
            return None  # nowhere to send it: load() says what's missing
        return (
            f"{_who(ep.where)} would send ${ep.key_env} to {host}, which {self.source} names and "
            f"is not {ep.provider}'s own host; if you trust it, run with --trust-endpoint {host} "
            f"(Python: pipeline.trust(endpoints=[{host!r}]))"
        )

    def _path_problem(self, access: DataAccess) -> str | None:
        if access.mode == "loads" or not access.local or access.target not in self.file_targets:
            return None
        path = Path(os.path.realpath(access.local_path()))
        roots = [os.getcwd(), *self.paths]
        if any(path.is_relative_to(os.path.realpath(root)) for root in roots):
            return None
        folder = path if path.is_dir() else path.parent
        return (
            f"{_who(access.where)} {access.mode} {access.target}, outside the working "
            f"directory, as {self.source} says; allow it with --allow-path {folder} "
            f"(Python: pipeline.trust(paths=[{str(folder)!r}]))"
        )


def _who(where: str) -> str:
    """``step 'load'`` for a step, ``generate.llm`` for a model in one."""
    return where if "." in where else f"step {where!r}"
