"""The /v1 routes, one module per kind of user."""
