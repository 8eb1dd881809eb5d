"""Configuration: maskrcnn-benchmark's yacs keys and defaults plus the project's, and the loader."""

from rcnn.config.loader import ConfigError, all_keys, get_default_config, load_config
from rcnn.config.paths_catalog import DatasetCatalog, DatasetCatalogError

__all__ = [
    "ConfigError",
    "DatasetCatalog",
    "DatasetCatalogError",
    "all_keys",
    "get_default_config",
    "load_config",
]
