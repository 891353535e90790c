"""A small synthetic dataset to try the tool on, and a toy feature extractor to evaluate it with.

    python docs/demo.py demo          # demo/PRCC (PRCC's layout) and demo/PRCC-parsing (its part maps)

The pedestrians are drawn (tests/support/synthetic.py): six body parts at known places, outfit colours
that change where the labels say clothes change. `demo/PRCC-parsing` holds their true part maps in
the `--parsing-dir` format, so a build needs no parsing model and runs on a CPU in seconds.
`docs/preview.png` in this repository is `builder preview` of the build the README's quick start
makes from it (`python docs/demo.py --preview docs/preview.png` remakes it).

`colour_features` is for `python -m occluded_ccreid.benchmark --features docs.demo:colour_features`:
each image's colours on a coarse grid, a stand-in for a re-id model that needs no weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SUPPORT = Path(__file__).resolve().parent.parent / "tests" / "support"


def make_demo(folder: Path) -> Path:
    """Write the synthetic PRCC tree and its part maps under `folder`; return the tree's root."""
    sys.path.insert(0, str(SUPPORT))
    from synthetic import make_prcc_tree

    tree = make_prcc_tree(folder, n_train=4, n_test=4, per_camera=2, quirks=False)
    return tree.root


def colour_features(images: list[Image.Image]) -> np.ndarray:
    """(N, 8 * 4 * 3) features: each RGB image averaged down to an 8 x 4 grid."""
    return np.stack(
        [np.asarray(image.convert("RGB").resize((4, 8), Image.BOX), dtype=np.float32).ravel() for image in images]
    )


def remake_preview(picture: Path) -> None:
    """The README's quick start in a temporary folder, then `builder preview` into `picture`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = make_demo(Path(tmp))
        out = Path(tmp) / "occluded-prcc"
        builder = [sys.executable, "-m", "builder.cli"]
        subprocess.run(
            [
                *builder,
                "build",
                "prcc",
                str(root),
                "--parsing-dir",
                f"{root}-parsing",
                "--out",
                str(out),
                "--no-progress",
            ],
            check=True,
        )
        subprocess.run([*builder, "preview", str(out), "--n", "12", "--out", str(picture)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, help="where to write PRCC/ and PRCC-parsing/")
    parser.add_argument("--preview", type=Path, help="instead: remake the README's picture into this file")
    args = parser.parse_args()
    if args.preview:
        remake_preview(args.preview)
    elif args.folder:
        root = make_demo(args.folder)
        print(f"{root} and {root}-parsing written")
    else:
        parser.error("give a folder, or --preview FILE")


if __name__ == "__main__":
    main()
