"""``scripts/bench``: the benchmark suite (issue 6).

Every figure comes from real processes on loopback — ``python -m service serve`` and ``worker``
under uvicorn with uvloop and httptools, a real receiver process, a real HTTP load generator —
because the costs that matter (the HTTP stack, the SQLite fsync, the event loop) only show up
there. Each scenario runs several times and reports the median with the min-max, and every
comparison (ingest against a bare server, the worker against a raw client) is measured in the
same run so a busy machine moves both sides. Each scenario checks its work in the database
afterwards: a number of "requests per second" that were not all applied means nothing.
"""
