"""Configuration: the `sdctl.yaml` model and its loader."""

from sdctl.config.loader import config_path, load, parse
from sdctl.config.model import TASK_TYPES, Config, Runtime

__all__ = ["Config", "Runtime", "TASK_TYPES", "config_path", "load", "parse"]
