"""Occluded cloth-changing person re-identification datasets: schema, source layouts, evaluation.

Importing this package needs neither torch nor transformers.
"""

from .evaluation import evaluate, evaluate_protocol, evaluate_single_shot, protocols
from .loading import labels, load
from .parts import BODY_PARTS, PART_NAMES
from .sources import LayoutError, get_source, source_names

__version__ = "0.1.0"

__all__ = [
    "BODY_PARTS",
    "PART_NAMES",
    "LayoutError",
    "evaluate",
    "evaluate_protocol",
    "evaluate_single_shot",
    "get_source",
    "labels",
    "load",
    "protocols",
    "source_names",
    "__version__",
]
