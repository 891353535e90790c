"""Hand a build to existing re-id training code, in the shapes that code already reads.

* `to_folder` / ``python -m occluded_ccreid.export BUILD OUT``: the build written back into its
  source dataset's folder layout and file names, so CAL / Simple-CCReID's dataset classes (and the
  Occluded-CC-ReID paper's) read it unchanged (`folder.py`; images encoded as `images.py` says).
* `cal_dataset`: CAL's dataset object (lists of tuples, ``num_train_pids``, ``num_train_clothes``,
  ``pid2clothes``) from the label columns alone (`cal.py`).
* `to_tuples` / `to_torchreid` / `pid2clothes`: one split as the tuple lists CAL's and
  torchreid's dataset classes build (`tuples.py`).
"""

from .cal import CALDataset, cal_dataset
from .folder import ExportResult, to_folder
from .images import JPEG_MEAN_ERROR_BOUND, JPEG_OPTIONS, ExportError
from .tuples import pid2clothes, to_torchreid, to_tuples

__all__ = [
    "CALDataset",
    "ExportError",
    "ExportResult",
    "JPEG_MEAN_ERROR_BOUND",
    "JPEG_OPTIONS",
    "cal_dataset",
    "pid2clothes",
    "to_folder",
    "to_torchreid",
    "to_tuples",
]
