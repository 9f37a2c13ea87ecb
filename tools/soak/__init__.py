"""The reliability soak (``scripts/soak``): the real ``web``, ``worker`` and simulator processes
under sustained load, with faults injected, then checked for the promises taskhook makes — no
accepted task, callback or event is ever lost; credits always balance; bad input never crashes
or corrupts it.

It lives outside ``service`` and touches the service only as a user and an operator would: its
HTTP API, its CLI, signals to its processes, and (read-only) its database at the end. The one
thing it borrows from the service's code is the pure ledger, to judge each task's history by the
same rules the service claims to follow.
"""
