"""Running one pipeline over many processes and machines.

``budget``: one rate budget per endpoint, leased in shares to the workers (no Ray needed).
``merge``: the shards' rows, statistics and caches put back together (no Ray needed).
``ray_backend``: the Ray driver, budget actor and shard worker (imports Ray when it runs).
"""
