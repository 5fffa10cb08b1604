"""Running one pipeline over many processes and machines.

``budget``: one rate budget per endpoint, leased in shares to the workers (no Ray needed).
``merge``: the shards' rows, statistics and caches put back together (no Ray needed).
``serving``: which local-model steps are served on Ray, their servers' flags, the client each
shard calls them with (no Ray needed).
``model_servers``: the model-server actors, their placement groups and processes.
``ray_backend``: the Ray driver, budget actor and shard worker (imports Ray when it runs).
"""
