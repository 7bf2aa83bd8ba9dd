"""The data check every task runs before training: ``seglab data check`` on the train / val splits."""
from __future__ import annotations

from ...errors import SeglabError


def check_splits(cfg: dict, root, *datasets) -> dict:
    """:func:`seglab.data.check.check_split` on each data set (``None`` skipped); the first problem found
    is one :class:`SeglabError` line naming the data set and split. Returns the reports by split name."""
    from ...data.check import CheckReport, check_split

    reports = {}
    for ds in datasets:
        if ds is None:
            continue
        rep = check_split(ds)
        reports[ds.split] = rep
        if rep.problems:
            first = CheckReport(str(root), cfg["data"]["format"], [], [rep]).first_problem()
            raise SeglabError(f"data set {root} split {ds.split!r} fails its check: {first}")
    return reports
