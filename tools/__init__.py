"""Operational tools run from ``scripts/``: the benchmark (``tools.bench``) and the soak
(``tools.soak``). They drive the real service processes; nothing in ``service`` imports them."""
