"""genas: one-shot neural architecture search driven by pluggable proxy scorers.

The data flows one way: config -> data -> supernet -> scorers -> evolution -> export.
This package holds the upstream core (search spaces, data, config, runs) and the
downstream analysis tools (NAS-Bench-201 table, landscape); see ``docs/architecture.md``.
"""

__version__ = "0.1.0"

from genas.errors import (
    CheckpointError,
    ConfigError,
    DataNotFoundError,
    GenasError,
    InvalidArchitectureError,
    NotTrainedError,
    PluginError,
    UnknownNameError,
)

__all__ = [
    "__version__",
    "CheckpointError",
    "ConfigError",
    "DataNotFoundError",
    "GenasError",
    "InvalidArchitectureError",
    "NotTrainedError",
    "PluginError",
    "UnknownNameError",
]
