"""Storage: the ``Store`` interface (``base``) and its SQLite implementation.

SQL lives in ``queries``; ``database`` owns connections and transactions; ``migrate`` applies the
numbered files in ``migrations/``. Nothing here decides business rules.
"""
