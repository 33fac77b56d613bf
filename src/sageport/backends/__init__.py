"""Where a host's process runs: the ``Backend`` interface (``base``) and its implementations.

``registry.get_backend(name)`` builds one by name; implementations are imported only when
asked for, so optional dependencies (Ray) stay optional.
"""
