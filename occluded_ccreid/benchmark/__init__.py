"""`python -m occluded_ccreid.benchmark`: how much occlusion costs a re-id model, and where.

Features come from a `transformers` image model or a user callable (`features`), with CAL's
test-time conventions; each query / gallery split is streamed once (`reading`); every protocol of the
dataset is evaluated on the occluded images and, when the build kept them, on the clean ones, with
breakdowns by the query's occluded part and occluded ratio (`metrics`); `report` prints and writes
the results. Only this subpackage needs torch and transformers; `import occluded_ccreid` does not.
"""

from __future__ import annotations


class BenchmarkError(Exception):
    """Bad input the user can fix; the CLI prints the message (no traceback) and exits with status 2."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["BenchmarkError", "first_line"]
