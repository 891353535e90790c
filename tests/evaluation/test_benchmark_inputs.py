"""The benchmark's --features: a function whose output changes width or is not finite is one line
and exit status 2 (issue 23), and the build it reads is not touched."""

import hashlib

import pytest
from snapshots import snapshot

from occluded_ccreid.benchmark.cli import main as benchmark_main

# -- the benchmark's --features -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            "calls[0] += 1\n    return np.ones((len(images), 4 + calls[0] % 2), np.float32)",
            "error: --features {module}:extract returned 4 features per image for one batch and 5 for an earlier one; "
            "it must return the same number D for every image",
        ),
        (
            "out = np.ones((len(images), 4), np.float32)\n    out[0, 0] = np.inf\n    return out",
            "error: --features {module}:extract returned infinite or NaN values for 1 of 4 images in a batch; "
            "distances between such features are undefined: it must return finite numbers",
        ),
    ],
)
def test_benchmark_features_that_change_width_or_are_not_finite(
    prcc_build, tmp_path, monkeypatch, capsys, body, expected
):
    module = f"hostile_feats_{hashlib.sha256(body.encode()).hexdigest()[:8]}"  # a new module each time
    (tmp_path / f"{module}.py").write_text(f"import numpy as np\ncalls = [0]\n\ndef extract(images):\n    {body}\n")
    monkeypatch.chdir(tmp_path)
    before = snapshot(prcc_build)
    assert (
        benchmark_main(
            ["--dataset", str(prcc_build), "--features", f"{module}:extract", "--batch-size", "4", "--no-progress"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err == expected.format(module=module) + "\n"
    assert snapshot(prcc_build) == before
