"""Delivery of taskhook's own webhooks to subscriber endpoints."""
