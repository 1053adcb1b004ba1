"""The local backend's HTTP routes, one module per part of the API, mounted by ``server.create_app``."""
