"""Upstream providers: one module per provider implementing ``base.Provider``."""
