"""Typed configs (YAML + dotted overrides), run folders and atomic writes.

The YAML files themselves live beside this module: configs/quickstart.yaml, configs/pcd/, configs/rl/.
"""
from configs.loader import ConfigError, dump_yaml, from_dict, load_config, to_dict

__all__ = ["ConfigError", "dump_yaml", "from_dict", "load_config", "to_dict"]
