"""Instance types as data: what each ``ml.*`` type promises (see ``catalog.py``)."""

from sageport.catalog.catalog import Catalog, InstanceType, UnknownInstanceType, load_catalog

__all__ = ["Catalog", "InstanceType", "UnknownInstanceType", "load_catalog"]
