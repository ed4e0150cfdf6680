"""``search_runs``: MLflow's filter language on SQLite and PostgreSQL, and its error messages."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

import loopml
from loopml.store.workspace import Workspace
from loopml.tracking.errors import FilterSyntaxError
from loopml.tracking.sql_store import SqlTrackingStore

THE_FILTER = (
    "metrics.acc > 0.9 and params.max_depth = '8' and tags.team = 'growth' "
    "and attributes.status = 'finished'"
)


def make_run(
    name: str,
    acc: float,
    *,
    depth: int = 8,
    team: str | None = "growth",
    earlier: Sequence[float] = (),
    fail: bool = False,
    experiment: str = "churn",
    note: str | None = None,
) -> str:
    """A run with params max_depth and n_estimators, metric acc (its history ends at ``acc``)."""
    try:
        with loopml.start_run(experiment=experiment, name=name, system_metrics=False) as run:
            loopml.log_params({"n_estimators": 200, "max_depth": depth})
            for value in [*earlier, acc]:
                loopml.log_metric("acc", value)
            if team is not None:
                loopml.set_tag("team", team)
            if note is not None:
                loopml.set_tag("note", note)
            if fail:
                raise RuntimeError("diverged")
    except RuntimeError:
        pass
    return run.id


@pytest.fixture
def runs(tracked_workspace: Workspace) -> dict[str, str]:
    """Runs that each miss THE_FILTER for one reason, two that match it, one deleted."""
    ids = {
        "best": make_run("best", 0.95, note="50% [off] *now*?"),
        "second": make_run("second", 0.92, earlier=[0.5]),  # latest value counts
        "shallow": make_run("shallow", 0.97, depth=4),
        "other-team": make_run("other-team", 0.99, team="Growth"),
        "failed": make_run("failed", 0.93, fail=True),
        "worse": make_run("worse", 0.5, earlier=[0.95]),
        "untagged": make_run("untagged", 0.96, team=None),
        "elsewhere": make_run("elsewhere", 0.98, experiment="fraud"),
        "deleted": make_run("deleted", 0.94),
    }
    SqlTrackingStore(tracked_workspace.metadata).set_deleted([ids["deleted"]], True)
    return ids


def names(frame: pd.DataFrame) -> list[str]:
    return [str(name) for name in frame["name"]]


def found(filter_string: str, experiment: str | None = "churn") -> set[str]:
    return set(names(loopml.search_runs(experiment, filter=filter_string)))


def test_the_issue_filter_with_order_and_limit(
    tracked_workspace: Workspace, runs: dict[str, str]
) -> None:
    frame = loopml.search_runs("churn", filter=THE_FILTER, order_by=["metrics.acc DESC"])
    assert names(frame) == ["best", "second"]
    assert list(frame.columns) == [
        "run_id",
        "experiment",
        "name",
        "status",
        "start_time",
        "end_time",
        "parent_run_id",
        "params.max_depth",
        "params.n_estimators",
        "metrics.acc",
        "tags.note",
        "tags.team",
    ]
    assert frame["run_id"].tolist() == [runs["best"], runs["second"]]
    assert frame["experiment"].tolist() == ["churn", "churn"]
    assert frame["status"].tolist() == ["finished", "finished"]
    assert frame["metrics.acc"].tolist() == [0.95, 0.92]  # the latest value of each
    assert frame["params.max_depth"].tolist() == ["8", "8"]
    assert frame["params.n_estimators"].tolist() == ["200", "200"]
    assert frame["tags.team"].tolist() == ["growth", "growth"]
    assert frame["tags.note"][0] == "50% [off] *now*?" and pd.isna(frame["tags.note"][1])
    assert frame["parent_run_id"].isna().all()
    best = loopml.get_run(runs["best"]).info
    assert best.end_time is not None
    assert frame["start_time"][0] == pd.Timestamp(best.start_time, unit="ms", tz="UTC")
    assert frame["end_time"][0] == pd.Timestamp(best.end_time, unit="ms", tz="UTC")

    ascending = loopml.search_runs("churn", filter=THE_FILTER, order_by=["metrics.acc ASC"])
    assert names(ascending) == ["second", "best"]
    top = loopml.search_runs(
        "churn", filter=THE_FILTER, order_by=["metrics.acc DESC"], max_results=1
    )
    assert names(top) == ["best"]
    # Every experiment when none is named; a list names several.
    everywhere = loopml.search_runs(filter=THE_FILTER, order_by=["metrics.acc DESC"])
    assert names(everywhere) == ["elsewhere", "best", "second"]
    both = loopml.search_runs(["churn", "fraud"], filter="params.max_depth = '4'")
    assert names(both) == ["shallow"]

    # Deleted runs are hidden unless asked for.
    assert "deleted" not in names(loopml.search_runs("churn"))
    assert len(loopml.search_runs("churn")) == 7
    shown = loopml.search_runs("churn", filter=THE_FILTER, include_deleted=True)
    assert set(names(shown)) == {"best", "second", "deleted"}
    assert loopml.get_run(runs["deleted"]).info.deleted is True
    SqlTrackingStore(tracked_workspace.metadata).set_deleted([runs["deleted"]], False)
    assert "deleted" in names(loopml.search_runs("churn"))


FILTER_CASES: list[tuple[str, set[str]]] = [
    # LIKE is case-sensitive, ILIKE is not (MLflow), on both databases.
    ("tags.team LIKE 'grow%'", {"best", "second", "shallow", "failed", "worse"}),
    ("tags.team LIKE 'GROW%'", set()),
    ("tags.team LIKE 'g_owth'", {"best", "second", "shallow", "failed", "worse"}),
    ("tags.team ILIKE 'GROW%'", {"best", "second", "shallow", "failed", "worse", "other-team"}),
    ("attributes.name LIKE '%e%'", {"best", "second", "other-team", "failed", "worse", "untagged"}),
    # != and NOT IN match only runs that have the key (MLflow).
    ("tags.team != 'growth'", {"other-team"}),
    ("tags.team NOT IN ('growth')", {"other-team"}),
    ("tags.team IN ('Growth', 'nobody')", {"other-team"}),
    ("params.max_depth != '8'", {"shallow"}),
    ("params.max_depth IN ('4', '16')", {"shallow"}),
    ("tags.team = 'GROWTH'", set()),
    # Characters special to SQLite's GLOB are plain text in a LIKE pattern.
    ("tags.note LIKE '%[off]%'", {"best"}),
    ("tags.note LIKE '50% *now*?'", {"best"}),
    ("tags.note LIKE '%*NOW*%'", set()),
    ("tags.note LIKE '%[o]%'", set()),
    ("attributes.status = 'failed'", {"failed"}),
    ("attributes.status IN ('failed', 'crashed')", {"failed"}),
    ("attributes.run_name = 'best'", {"best"}),
    ("metrics.acc = 0.95", {"best"}),
    ("metrics.acc <= 0.5", {"worse"}),
    ("metrics.acc >= 0.97", {"shallow", "other-team"}),
    ("metrics.acc != 0.5", {"best", "second", "shallow", "other-team", "failed", "untagged"}),
    ("metrics.missing > 0", set()),
    ("params.n_estimators = '200' and metrics.acc < 0.93", {"second", "worse"}),
    ("param.max_depth = '4' AND metric.acc > 0.9", {"shallow"}),
    ('metrics.acc > 1e-3 and tags.`team` = "Growth"', {"other-team"}),
]


def test_filter_semantics(runs: dict[str, str]) -> None:
    # One test for all the cases: the runs are made once per database.
    wrong = {}
    for filter_string, expected in FILTER_CASES:
        got = found(filter_string)
        if got != expected:
            wrong[filter_string] = (sorted(got), sorted(expected))
    assert not wrong, wrong
    shallow = loopml.get_run(runs["shallow"]).info.start_time
    later = found(f"attributes.start_time > {shallow}")
    assert "shallow" not in later and "best" not in later and "untagged" in later


def test_order_by_several_keys_and_attributes(runs: dict[str, str]) -> None:
    frame = loopml.search_runs(
        "churn", filter="tags.team = 'growth'", order_by=["params.max_depth", "metrics.acc DESC"]
    )
    assert names(frame) == ["shallow", "best", "failed", "second", "worse"]
    by_name = loopml.search_runs("churn", order_by=["attributes.name DESC"])
    assert names(by_name) == sorted(names(by_name), reverse=True)
    # A run without the sort key comes last either way.
    untagged_last = loopml.search_runs("churn", order_by=["tags.team DESC"])
    assert names(untagged_last)[-1] == "untagged"
    untagged_last = loopml.search_runs("churn", order_by=["tags.team ASC"])
    assert names(untagged_last)[-1] == "untagged"
    # Without order_by: newest first.
    newest_first = names(loopml.search_runs("churn"))
    assert newest_first == [
        "untagged",
        "worse",
        "failed",
        "other-team",
        "shallow",
        "second",
        "best",
    ]


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("metrics.acc > 'high'", r"position 12 \('>'\).*numeric comparison for metrics\.acc"),
        ("metrics.acc > 0.9 or params.a = '1'", r"position 18 \('or'\).*'and'"),
        ("foo.acc > 1", r"position 0 \('foo'\).*metrics\., params\., tags\. or attributes\."),
        ("params.max_depth = '8", r"position 19 \(\"'8\"\).*unexpected character"),
        ("tags.team ~ 'x'", r"position 10 \(\"~ 'x'\"\): unexpected character"),
        ("attributes.colour = 'red'", r"position 11 \('colour'\).*attributes"),
        ("params.a IN '1'", r"position 12 \(\"'1'\"\).*'\(' after IN"),
        ("params.a = 8", r"position 9 \('='\).*string comparison"),
        ("metrics.acc LIKE '0.9%'", r"position 12 \('LIKE'\).*numeric comparison"),
        ("metrics acc > 1", r"position 8 \('acc'\).*'\.'"),
        ("metrics.acc > 0.9 and", r"ends where an identifier .* was expected"),
        ("metrics.acc >", r"ends where a value was expected"),
    ],
)
def test_a_malformed_filter_names_where_and_what(
    workspace: Workspace, filter_string: str, message: str
) -> None:
    with pytest.raises(FilterSyntaxError, match=message):
        loopml.search_runs(filter=filter_string)


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        (["metrics.acc DOWN"], r"position 12 \('DOWN'\).*ASC or DESC"),
        (["metrics.acc DESC x"], r"position 17 \('x'\).*end of the order-by"),
        (["acc"], r"position 0 \('acc'\)"),
    ],
)
def test_a_malformed_order_by_is_a_clear_error(
    workspace: Workspace, order_by: list[str], message: str
) -> None:
    with pytest.raises(FilterSyntaxError, match=message):
        loopml.search_runs(order_by=order_by)


def test_max_results_must_be_positive(workspace: Workspace) -> None:
    with pytest.raises(FilterSyntaxError, match="max_results"):
        loopml.search_runs(max_results=0)


def test_an_empty_search_has_the_fixed_columns(workspace: Workspace) -> None:
    frame = loopml.search_runs("nothing-here")
    assert frame.empty
    assert list(frame.columns) == [
        "run_id",
        "experiment",
        "name",
        "status",
        "start_time",
        "end_time",
        "parent_run_id",
    ]
