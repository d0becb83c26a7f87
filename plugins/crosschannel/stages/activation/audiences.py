"""Audiences: one SQL file per audience in include/sql/audiences/ (adding a file adds an audience), each run as a
SQL job through include/sql/activation/audience_members.sql, which keeps the scored customers and gives every
member a stable hold-out assignment.

    <root>/activation/audiences/<audience>/dt=D/   audience, customer_id, detail, assignment (treatment|control)

An audience whose SQL says `-- needs: events` (sources of the config, comma-separated) is skipped, with the reason in
the day's audiences report, when the retailer has not that source (README: "Declared sources").

The assignment is a hash of (audience, customer id) against `activation.holdout_percent`, so a customer who
stays in an audience stays in the same group every day; control members are recorded but never sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import TYPE_CHECKING

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError, MissingPartition
from crosschannel.stages.trusted import features

if TYPE_CHECKING:
    import pandas as pd

AUDIENCE_DIR = engines.SQL_ROOT / "audiences"
INPUT_TABLES = ("customers", "orders", "order_lines", "products")
HASH_SPACE = 16**8  # the first 8 hex digits of the md5


class AudienceError(DataError, RuntimeError):
    """An audience could not be built; the message names the audience and partition."""


NEEDS = re.compile(r"^--\s*needs:\s*(.+)$", re.MULTILINE)


def _skip_reasons() -> dict[str, str | None]:
    """Every audience of include/sql/audiences/ by name, with why it is skipped (None: built)."""
    reasons = {}
    for path in sorted(AUDIENCE_DIR.glob("*.sql")):
        needs = [name.strip() for line in NEEDS.findall(path.read_text()) for name in line.split(",")]
        reasons[path.stem] = get_config().sources.missing(needs, f"audience {path.stem}")
    return reasons


def names(every: bool = False) -> list[str]:
    """The audiences built (every one with `every`: the synthetic retailer has every source)."""
    return [name for name, reason in _skip_reasons().items() if every or not reason]


def skipped() -> dict[str, str]:
    """The audiences not built, with the reason (a source they need that the retailer has not)."""
    return {name: reason for name, reason in _skip_reasons().items() if reason}


def control_below(percent: float) -> str:
    """The hex threshold under which a member's hash puts it in the control group."""
    return f"{round(percent / 100 * HASH_SPACE):08x}"


def is_control(audience: str, customer_id: int, percent: float) -> bool:
    """The assignment audience_members.sql computes, in Python (the tests hold them equal)."""
    digest = hashlib.md5(f"{audience}:{customer_id}".encode()).hexdigest()
    return digest[:8] < control_below(percent)


def members_sql(audience: str, day: dt.date) -> str:
    end = day + dt.timedelta(days=1)
    bounds = {"as_of_end": engines.stamp(end), "since_7d": engines.stamp(end - dt.timedelta(days=7)),
              "since_14d": engines.stamp(end - dt.timedelta(days=14))}
    return engines.render("activation/audience_members.sql", audience=audience,
                          audience_sql=engines.render(f"audiences/{audience}.sql", **bounds).rstrip(),
                          control_below=control_below(get_config().activation.holdout_percent))


def score_dirs(day: dt.date) -> list:
    """The day's published scores of every model, each required."""
    folders = []
    for model in get_config().models.specs:
        folder = paths.scores(model, day, "scores")
        if not storage.is_committed(folder):
            raise MissingPartition(f"{storage.url_of(folder)}: no published {model} scores for {day}; "
                                    "run propensity_scoring for the partition first")
        folders.append(folder)
    return folders


def plan(day: dt.date) -> list[dict]:
    """One SQL job per audience over the day's scores, features, trusted state and recent events."""
    inputs = {**features.inputs(day, INPUT_TABLES), "scores": sqljobs.parquet(score_dirs(day)),
              "features": sqljobs.parquet([paths.features(day)])}
    return [sqljobs.job(day, f"audience_{name}.sql", members_sql(name, day), inputs, paths.audience_members(name, day))
            for name in names()]


def read(day: dt.date):
    """Every audience's members of the day as one pandas frame (an audience not built is an error)."""
    import pandas as pd

    frames = []
    for name in names():
        folder = paths.audience_members(name, day)
        if not storage.is_committed(folder):
            raise AudienceError(f"audience {name}: {storage.url_of(folder)} has no committed members for {day}")
        frames.append(sqljobs.read_partition(folder).to_pandas())
    return pd.concat(frames, ignore_index=True)


def summarize(day: dt.date, members: pd.DataFrame) -> dict:
    """Treatment and control counts per audience (`members`: `read(day)`), checked: one row per member, known
    assignments."""
    duplicated = members[members.duplicated(["audience", "customer_id"])]
    if len(duplicated):
        raise AudienceError(f"partition {day}: {len(duplicated)} duplicated audience member(s), e.g. "
                            f"{duplicated[['audience', 'customer_id']].head(5).to_dict('records')}")
    unknown = set(members["assignment"]) - {"treatment", "control"}
    if unknown:
        raise AudienceError(f"partition {day}: unknown assignment(s) {sorted(unknown)}")
    counts = members.groupby(["audience", "assignment"]).size()
    summary = {name: {group: int(counts.get((name, group), 0)) for group in ("treatment", "control")}
               for name in names()}
    storage.write_json(paths.reports(day, "activation", "audiences.json"),
                       {"partition": day.isoformat(), "holdout_percent": get_config().activation.holdout_percent,
                        "audiences": summary, "skipped": skipped()})
    return summary
