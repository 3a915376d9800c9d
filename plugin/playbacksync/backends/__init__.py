"""Server clients. ``make_backend(server_config)`` picks the class by type."""
