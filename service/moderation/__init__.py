"""Moderation around the pure rule stage (``service.core.moderation``): the second, external
stage (an adapter, like a provider) and the decision log the submit use case keeps."""
