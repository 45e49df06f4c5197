"""Registry moves on a real MLflow SQLite store: idempotent registration, blue-green, rollback."""

import numpy as np
import pandas as pd
import pytest

from registry import promote, register, versions
from registry.store import Registry
from tasks.data.spec import DatasetSpec
from tasks.training.train import fit

SPEC = DatasetSpec(name="t", time_column="ts", target="y", task="classification",
                   features=["x"], primary_metric="accuracy", positive_class=1)


def _model_version(reg, batch_set, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=400, freq="h"),
                       "x": rng.normal(size=400)})
    df["y"] = (df.x > 0).astype(int)
    model = fit(df, SPEC, None)
    sample = model.example(df.head(3))
    return register.register(reg, python_model=model, input_example=sample,
                             output_example=model.predict(None, sample), reference=df,
                             batch_set=batch_set, params={"rows": 400},
                             metrics={"gate_challenger_accuracy": 0.9}, tags={"k": "v"},
                             experiment="t-training")


def test_register_is_idempotent_and_loads_back(reg, store):
    v1 = _model_version(reg, "set-a")
    again = _model_version(reg, "set-a")
    assert again.version == v1.version == 1
    assert [v.version for v in versions.all_versions(reg)] == [1]
    info = versions.all_versions(reg)[0]
    assert info.tags["k"] == "v" and info.tags[register.BATCH_SET_TAG] == "set-a"
    model = versions.load_model(reg, 1)
    out = model.predict(None, pd.DataFrame({"x": [-1.0, 1.0]}))
    assert list(out["prediction"]) == [0, 1] and out["score"].between(0, 1).all()
    assert len(versions.load_reference(reg, info)) == 400
    assert (store / "mlartifacts").exists()  # artifacts stay in the state dir


def test_blue_green_promote_and_rollback(reg):
    for i, name in enumerate(["a", "b", "c"]):
        _model_version(reg, name, seed=i)
    assert versions.by_alias(reg, "champion") is None
    promote.promote(reg, 1, reason="bootstrap")
    promote.promote(reg, 2, reason="better", expected_from=1)
    assert versions.aliases(reg) == {"champion": 2, "previous": 1}
    promote.promote(reg, 2, reason="again", expected_from=2)  # idempotent: no new record
    assert len(promote.records(reg)) == 2
    with pytest.raises(promote.PromotionError):
        promote.promote(reg, 3, reason="stale gate", expected_from=1)
    assert versions.aliases(reg)["champion"] == 2  # a refused move leaves the champion
    record = promote.rollback(reg, reason="bad model", by="tester")
    assert versions.aliases(reg) == {"champion": 1, "previous": 2}
    assert (record["action"], record["from"], record["to"], record["by"]) == (
        "rollback", 2, 1, "tester")
    assert [r["action"] for r in promote.records(reg)] == ["promote", "promote", "rollback"]


def test_rollback_without_previous_is_refused(reg):
    _model_version(reg, "only")
    promote.promote(reg, 1, reason="bootstrap")
    with pytest.raises(promote.PromotionError, match="nothing to roll back"):
        promote.rollback(reg, reason="x")
    assert versions.aliases(reg) == {"champion": 1}


def test_registration_pins_the_environment_without_a_pip_warning(reg):
    """conda.yaml, requirements.txt and python_env.yaml pin the stack as before, and MLflow
    no longer warns that it cannot find pip's version (uv's venvs have no pip)."""
    import logging

    import mlflow

    seen: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = seen.append
    logger = logging.getLogger("mlflow.utils.environment")
    logger.addHandler(handler)
    try:
        info = _model_version(reg, "pinned")
    finally:
        logger.removeHandler(handler)
    assert not [r.getMessage() for r in seen if "pip" in r.getMessage()]
    from registry.store import fluent

    with fluent(reg.tracking_uri):
        local = mlflow.artifacts.download_artifacts(f"models:/{reg.model_name}/{info.version}")
    conda = pytest.importorskip("yaml").safe_load(open(f"{local}/conda.yaml"))
    pins = register._pip_requirements()
    assert conda["dependencies"][1:] == ["pip", {"pip": pins}]
    assert open(f"{local}/requirements.txt").read().split() == pins


def test_a_rollback_that_expects_another_champion_is_refused(reg):
    """A rollback names the champion it means to leave: if a concurrent rollback (or a
    cycle) moved the champion since, it is refused with who did it and when."""
    for i, name in enumerate(["a", "b"]):
        _model_version(reg, name, seed=i)
    promote.promote(reg, 1, reason="bootstrap")
    promote.promote(reg, 2, reason="better", expected_from=1)
    first = promote.rollback(reg, reason="first", by="opA", expected_from=2)  # v2 -> v1
    with pytest.raises(promote.PromotionError) as refused:
        promote.rollback(reg, reason="second, read v2 too", by="opB", expected_from=2)
    assert str(refused.value) == (
        f"champion already rolled back from v2 to v1 by opA at {first['at']}; not rolling "
        "back again (see `greenlight history`)")
    assert versions.aliases(reg) == {"champion": 1, "previous": 2}
    assert [r["action"] for r in promote.records(reg)] == ["promote", "promote", "rollback"]


def test_a_rollback_walks_back_and_never_re_promotes_a_demoted_version(reg):
    """v1 -> v2 -> v3, then two rollbacks: v3 -> v2 -> v1. The old toggle went v2 -> v3,
    back to the version just rolled back. Only a person naming it (--to) brings v3 back,
    recorded as that person's promotion, and the next rollback skips v3's demotion."""
    for i, name in enumerate(["a", "b", "c"]):
        _model_version(reg, name, seed=i)
    promote.promote(reg, 1, reason="bootstrap")
    promote.promote(reg, 2, reason="better", expected_from=1)
    promote.promote(reg, 3, reason="better", expected_from=2)
    assert promote.rollback(reg, reason="bad v3", expected_from=3)["to"] == 2
    assert promote.rollback(reg, reason="bad v2 too", expected_from=2)["to"] == 1
    with pytest.raises(promote.PromotionError, match="nothing to roll back to"):
        promote.rollback(reg, reason="again", expected_from=1)
    assert versions.aliases(reg)["champion"] == 1
    named = promote.rollback(reg, reason="v3 was fine after all", by="carol", to=3)
    assert (named["action"], named["from"], named["to"], named["by"], named["named"]) == (
        "promote", 1, 3, "carol", True)
    with pytest.raises(promote.PromotionError, match="no v9 to roll back to"):
        promote.rollback(reg, reason="typo", to=9)
    # from v3 (re-promoted by carol) the history goes back to v1: v2 was rolled back
    assert promote.rollback(reg, reason="no", expected_from=3)["to"] == 1
    assert versions.aliases(reg)["champion"] == 1


FOUND_BY_TAG = ["a,b", "A,B", "it's", 'say "hi"', "both ' and \"", "pct%_", "back\\slash"]


def _versions_tagged(reg):
    """Versions of `reg` and of a second model, tagged as a registration tags them."""
    reg.client.create_registered_model(reg.model_name)
    reg.client.create_registered_model(reg.model_name + "-other")
    for value in ["x", *FOUND_BY_TAG, "a,b"]:  # "a,b" twice: the earliest is the one found
        for name in (reg.model_name + "-other", reg.model_name):
            reg.client.create_model_version(name, source=str(reg.state_dir),
                                            tags={register.BATCH_SET_TAG: value})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_find_by_tag_asks_the_store_for_the_exact_value(backend, store, tmp_path):
    """One filtered query on both stores (SQLite in tests, PostgreSQL in production): exact,
    case-sensitive, no wildcards, quotes either way, only this model, the earliest version."""
    from contextlib import nullcontext

    from tests.servers import postgres_database, postgres_unavailable

    if backend == "postgresql" and postgres_unavailable():
        pytest.skip(postgres_unavailable())
    database = postgres_database("mlflow") if backend == "postgresql" else nullcontext(
        f"sqlite:///{store}/mlflow.db")
    with database as uri:
        reg = Registry(uri, f"m-tag-{backend}", tmp_path)
        assert versions.find_by_tag(reg, register.BATCH_SET_TAG, "a,b") is None  # no model yet
        _versions_tagged(reg)
        for i, value in enumerate(FOUND_BY_TAG, start=2):
            found = versions.find_by_tag(reg, register.BATCH_SET_TAG, value)
            assert found is not None and found.version == i, value
            assert found.tags[register.BATCH_SET_TAG] == value
        for absent in ["a,%", "a_b", "nope", ""]:
            assert versions.find_by_tag(reg, register.BATCH_SET_TAG, absent) is None
        assert versions.find_by_tag(reg, "greenlight.other", "x") is None
