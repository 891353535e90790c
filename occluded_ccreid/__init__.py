"""Occluded cloth-changing person re-identification datasets: schema, source layouts, evaluation.

Importing this package needs neither torch nor transformers.
"""

from .parts import BODY_PARTS, PART_NAMES
from .sources import LayoutError, get_source, source_names

__version__ = "0.1.0"

__all__ = ["BODY_PARTS", "PART_NAMES", "LayoutError", "get_source", "source_names", "__version__"]
