"""The HTTP edge: routes per resource, authentication, body parsing and error mapping."""
