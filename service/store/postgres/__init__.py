"""PostgreSQL: the ``Store`` for many ``web`` and ``worker`` processes sharing one database."""
