"""The `greenlight` command. Heavy libraries load inside the commands, so `--help` stays fast."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.console import line
from flows.policies import Policy, approval_needs_server
from tasks.data.home import adopt_servers


def _flag_type(self: typer.core.TyperOption, ctx: typer.Context) -> str | None:
    """No type beside a flag in --help: Typer 0.29 shows `--force <bool>`, as if the flag
    took a value (`--force true` is an error)."""
    return None if self.is_flag else _TYPE_SHOWN(self, ctx)


_TYPE_SHOWN = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="greenlight keeps a tabular model right while its live data drifts.")


def _width() -> int | None:
    """The terminal's width; piped or captured, COLUMNS if set, else wide enough for the
    batch table (there is no terminal to size it)."""
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 160


console = Console(width=_width())
err = Console(stderr=True, soft_wrap=True)

HomeOpt = Annotated[str | None, typer.Option(
    "--home", envvar="GREENLIGHT_HOME",
    show_default="./.greenlight",
    help="State dir, or an object-store URL shared by workers (s3://bucket/greenlight).")]
DatasetOpt = Annotated[str, typer.Option(help="Dataset spec under expectations/.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="SECTION.KEY=VALUE",
    help="Set a flow parameter; repeatable, e.g. --set training.gate_fraction=0.5. SECTION is "
         "thresholds, training, scale or guardrails; every key with its default and meaning "
         "is in docs/configuration.md (or run: python -m cli.settings). A list or table is "
         "given as JSON. Beats $GREENLIGHT_HOME/greenlight.toml, which beats the defaults.")]


def _local_root(home: str | Path | None) -> tuple[Path, str]:
    """This machine's folder for the state dir, and the state dir as GREENLIGHT_HOME says
    it: the same folder, or an object-store URL whose local folder is its scratch."""
    from core.files import is_url
    from tasks.data.home import Home

    value = str(home or ".greenlight")
    if is_url(value):
        state = Home.from_env(value)
        return state.scratch, str(state.root)
    root = Path(value.removeprefix("file://")).expanduser().resolve()
    return root, str(root)


def _environment(home: str | Path | None, quiet: bool = False) -> Path:
    """Quiet, offline, self-contained defaults, set before Prefect or MLflow are imported.
    Returns this machine's folder for the state dir (see `_local_root`).

    `quiet` (the demo) leaves the console to the progress bar: warnings and errors only."""
    root, os.environ["GREENLIGHT_HOME"] = _local_root(home)
    # A log handler that cannot write (a full disk) must not print a traceback of its own:
    # the command's one line says what failed.
    logging.raiseExceptions = False
    (root / "prefect").mkdir(parents=True, exist_ok=True)
    adopt_servers(root)  # the servers `greenlight up` runs on this state dir, unless set
    for key, value in {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
                       "MLFLOW_LOGGING_LEVEL": "ERROR" if quiet else "WARNING",
                       "PREFECT_LOGGING_LEVEL": "WARNING" if quiet else "INFO",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GIT_PYTHON_REFRESH": "quiet",
                       "PREFECT_HOME": str(root / "prefect"),
                       "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                       # MLflow writes `🏃 View run …` to stdout for each run on a server,
                       # which breaks `greenlight run | jq`; the links are in the summary.
                       "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
                       # Prefect's 20 s is too tight for a cold start on a busy 2-core box.
                       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}.items():
        os.environ.setdefault(key, value)
    return root


def _fail(message: str, code: int = 2) -> None:
    """One line on stderr, then exit. The message is text, never console markup: a file's
    `[training]` table or a value in brackets must show as written."""
    line(err, ("error:", "bold red"), f" {message}")
    raise typer.Exit(code)


UNREACHABLE_EXIT = 3  # a server is down: retry later, unlike bad input (2)


def _settings(dataset: str, sets: list[str] | None, root: Path,
              options: dict[str, dict[str, object]] | None = None):
    """The cycle's settings from `--set` and greenlight.toml (cli/settings.py), checked
    before anything heavy loads; bad input is one line naming the flag or file (exit 2)."""
    from cli.settings import SettingsError, resolve

    try:
        return resolve(dataset, sets or (), root, options)
    except SettingsError as exc:
        _fail(str(exc))


def _registry(dataset: str):
    """The state dir and the dataset's registry: MLflow only, never the cycle's libraries."""
    from tasks.data.home import Home
    from tasks.data.spec import load_spec

    home = Home.from_env()
    try:
        spec = load_spec(dataset)  # an unknown dataset is one line, before MLflow loads
    except ValueError as exc:
        _fail(str(exc))
    from registry.store import for_dataset

    try:
        tracking_uri = home.tracking_uri  # an object-store home without an MLflow server
    except ValueError as exc:
        _fail(str(exc))
    return home, for_dataset(spec.name, home.root, tracking_uri)


@app.command(short_help="Replay a stream through the whole loop; show what it decided.")
def demo(
    dataset: DatasetOpt = "synthetic",
    data: Annotated[Path | None, typer.Option(help="Real data file to replay instead of the "
                                                   "synthetic stream.")] = None,
    freq: Annotated[str, typer.Option(help="Batch period for real data: Y, Q, M, W, D, h, "
                                           "with a multiple if wanted (2W).")] = "M",
    warmup: Annotated[int | None, typer.Option(
        help="Batches landed before the first cycle.")] = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most this many batches.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic stream.")] = 7,
    settings: SetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Replay a stream of batches through the whole loop and show what it decided."""
    root = _environment(home, quiet=True)
    chosen = _settings(dataset, settings, root)
    from cli.demo import run_demo
    from cli.embedded import ServerDidNotStart

    try:
        run_demo(root, dataset=dataset, data=data, freq=freq, warmup=warmup, limit=limit,
                 seed=seed, console=console, parameters=chosen.models())
    except ValueError as exc:
        _fail(str(exc))
    except ServerDidNotStart as exc:
        _fail(str(exc), UNREACHABLE_EXIT)


@app.command(short_help="One cycle over what is in landing/; prints what it decided.")
def run(
    dataset: DatasetOpt = "synthetic",
    policy: Annotated[Policy, typer.Option(
        help="The promotion policy: what happens to a challenger that passes the gate.")
    ] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Retrain even without drift.")] = False,
    harvest_served: Annotated[bool, typer.Option(
        "--harvest/--no-harvest", help="First land served predictions whose labels have "
                                       "arrived (see `greenlight harvest`).")] = True,
    dask_min_rows: Annotated[int | None, typer.Option(
        envvar="GREENLIGHT_DASK_MIN_ROWS", min=1, show_default="20,000,000",
        help="Run a step on Dask when its input has at least this many rows.")] = None,
    dask_address: Annotated[str | None, typer.Option(
        envvar="GREENLIGHT_DASK_ADDRESS",
        help="Dask scheduler; unset: a LocalCluster when a step needs one.")] = None,
    settings: SetOpt = None,
    approval_timeout: Annotated[int, typer.Option(
        "--approval-timeout", min=1, metavar="SECONDS",
        help="With --policy manual or partial: how long the approval waits for a person; "
             "no answer by then is a rejection.")] = 86_400,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the JSON summary on stdout instead of the line, and nothing "
                       "else (greenlight run --json | jq).")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Also show Prefect's flow and task run lines on stderr.")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Run one cycle over what is in landing/ (after harvesting labelled served predictions).

    Prints one line saying in words what the cycle saw and decided, e.g. `2026-W17: drift
    0.57 (market, income) -> retrain -> gate clear +21.0% (CI +16.6..+25.4%) -> v2 @champion`.
    The cycle's JSON summary is written to <state dir>/runs/<UTC time>-<dataset>.json (with
    --json it is printed instead of the line). Warnings (quarantined, held, still being
    written) go to stderr. A run with nothing new says so and writes no file.

    Exit 0: the cycle ran, also when it quarantined or held a batch (a scheduler sees those
    with `greenlight run --json | jq -e '[.quarantined, .held] | add | length == 0'`); 1: an
    unexpected failure (traceback in <state dir>/logs/errors.log); 2: a bad flag, setting or
    dataset, or data that cannot give a first champion; 3: a server is unreachable."""
    if verbose and os.environ.get("PREFECT_LOGGING_LEVEL") != "DEBUG":
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"  # Prefect reads it when imported
    root = _environment(home)
    # Checked before the idle answer, so a typo is caught on a run with nothing to do.
    chosen = _settings(dataset, settings, root, {"scale": {
        "dask_min_rows": dask_min_rows, "dask_address": dask_address or None}})
    refusal = approval_needs_server(policy, os.environ.get("PREFECT_API_URL"))
    if refusal:
        _fail(refusal)
    from cli.outages import mlflow_unreachable, prefect_unreachable

    down = prefect_unreachable(os.environ.get("PREFECT_API_URL"))
    if down:
        _fail(down, UNREACHABLE_EXIT)
    from tasks.data.home import Home

    if not force:  # answered from file names alone, before anything heavy is imported
        from tasks.data.idle import nothing_new

        idle = nothing_new(Home.from_env(), dataset)
        if idle:
            print(json.dumps({"batches": [], "nothing_new": idle}) if as_json else idle)
            return
    from cli.embedded import ServerDidNotStart, start_early

    server_ready = start_early()  # Prefect's temporary server starts while the cycle imports
    import gc
    from contextlib import redirect_stdout

    from cli.outages import quiet_console
    from flows.cycle import cycle

    gc.freeze()  # the imported stack is never garbage: full collections need not walk it
    # tracebacks and retry warnings: to the error log; Prefect's run lines only with -v
    log = quiet_console(root, verbose=verbose)

    try:
        parameters = chosen.models()  # the typed models, as the Prefect UI's form gives them
        try:
            server_ready()
        except ServerDidNotStart as exc:
            _fail(str(exc), UNREACHABLE_EXIT)
        with redirect_stdout(sys.stderr):  # stdout holds the line (or the JSON) and nothing else
            summary = cycle(dataset=dataset, policy=policy, force_retrain=force,
                            harvest_served=harvest_served,
                            approval_timeout_seconds=approval_timeout, **parameters)
    except ValueError as exc:
        _fail(str(exc))
    except Exception as exc:
        down = mlflow_unreachable(exc, Home.from_env().tracking_uri, log)
        if down is None:
            raise
        _fail(down, UNREACHABLE_EXIT)
    _report(summary, root, dataset, as_json)


def _report(summary: dict, root: Path, dataset: str, as_json: bool) -> None:
    """The cycle's JSON summary to <state dir>/runs/, so the numbers are kept; then on stdout
    either the summary alone (--json, for scripts) or the one line a person reads."""
    from datetime import UTC, datetime

    from cli.views import cycle_line
    from core.clean import json_safe

    text = json.dumps(json_safe(summary), default=str, allow_nan=False, indent=2)
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    (runs / f"{stamp}-{dataset}.json").write_text(text + "\n", encoding="utf-8")
    print(text if as_json else cycle_line(summary, dataset, terminal=sys.stdout.isatty()),
          flush=True)


@app.command(short_help="Infer a dataset's spec and GX suite from a sample.")
def init(
    name: Annotated[str, typer.Argument(help="Dataset name: the folder NAME/ under the "
                                              "expectations dir.")],
    data: Annotated[Path, typer.Option(help="A sample of the data: CSV (.csv, .csv.gz) or "
                                            "parquet, with the time column and the target.")],
    target: Annotated[str, typer.Option(help="The column to predict.")],
    time_column: Annotated[str, typer.Option("--time", help="The time column (dates or "
                                                            "date-times).")],
    exclude: Annotated[list[str] | None, typer.Option(
        help="A column to leave out of the features (ids, leaks); repeatable.")] = None,
    update: Annotated[bool, typer.Option(
        "--update", help="NAME exists: write the widened spec and suite (hand edits kept). "
                         "Without it a re-run only shows the differences.")] = False,
    out: Annotated[Path | None, typer.Option(
        show_default="greenlight's expectations/, the only one replay and run read",
        help="Expectations dir to write NAME/ into.")] = None,
) -> None:
    """Infer a dataset's spec and GX suite from a sample, validate the sample, say what to
    review. Exit 0: written or up to date; 1: differences not written; 2: bad input."""
    from tasks.data.home import EXPECTATIONS_DIR
    from tasks.data.infer import InitError, init_dataset

    root = (out or EXPECTATIONS_DIR).expanduser().resolve()
    try:
        result = init_dataset(name, data, target=target, time_column=time_column, root=root,
                              exclude=tuple(exclude or ()), update=update)
    except InitError as exc:
        _fail(str(exc))
    for said in result.lines():
        line(console, said, soft_wrap=True)
    if result.written and root != EXPECTATIONS_DIR.resolve():
        line(console, f"note: replay and run read {EXPECTATIONS_DIR} only; copy {name}/ there "
                      "to use it")
    elif result.written:
        line(console, f"next: greenlight replay --dataset {name} --data {data} --freq M, then "
                      f"greenlight run --dataset {name} (expectations/README.md)")
    raise typer.Exit(result.exit_code)


@app.command(short_help="Cut a dataset into batches and land them in landing/.")
def replay(
    dataset: DatasetOpt = "elec2",
    data: Annotated[Path | None, typer.Option(help="Data file (default: ../shared/data).")] = None,
    freq: Annotated[str, typer.Option(
        help="Batch period, a pandas unit: Y, Q, M, W, D, h, min, s, with a multiple if "
             "wanted (2W, 3M, 6h).")] = "M",
    rows: Annotated[int | None, typer.Option(
        help="Cut batches of this many rows instead of by period.")] = None,
    start: Annotated[int, typer.Option(help="First batch index to land.")] = 0,
    count: Annotated[int | None, typer.Option(help="How many batches to land.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    home: HomeOpt = None,
) -> None:
    """Cut a dataset into time-ordered batches and drop them into landing/."""
    _environment(home)
    from cli.demo import batches_for
    from tasks.data.home import Home
    from tasks.data.replay import write_batch

    try:
        batches = batches_for(dataset, data, freq, seed=7, rows=rows)
    except ValueError as exc:
        _fail(str(exc))
    chosen = batches[start: None if count is None else start + count]
    if not chosen:  # past the end (or --count 0): landing nothing is an error, said once
        asked = f"--count {count}" if count is not None and count <= 0 else f"--start {start}"
        _fail(f"{asked}: nothing to land; the {dataset} stream has {len(batches)} batches "
              f"(indices 0 to {len(batches) - 1})")
    landing = Home.from_env().ensure().landing
    for batch in chosen:
        line(console, f"landed {write_batch(batch, landing, fmt)}")
    if count is not None and len(chosen) < count:
        line(console, f"landed {len(chosen)} of the {count} batches asked for: the stream ends "
                      f"at index {len(batches) - 1}")


@app.command(short_help="Champion, versions, and every batch with its decision.")
def status(
    dataset: DatasetOpt = "synthetic",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    home: HomeOpt = None,
) -> None:
    """Champion, previous, versions and the recent batches with their decisions."""
    root = _environment(home)
    from cli.outages import mlflow_unreachable, quiet_console

    log = quiet_console(root)
    found = _registry(dataset)
    from cli.status import status as collect
    from cli.views import print_status
    from flows.params import Guardrails

    guardrails = Guardrails(**_settings(dataset, None, root).values.get("guardrails", {}))
    try:
        state = collect(*found, guardrails)
    except Exception as exc:  # a server that is down is one line; anything else goes up
        down = mlflow_unreachable(exc, found[1].tracking_uri, log)
        if down is None:
            raise
        _fail(down, UNREACHABLE_EXIT)
    if as_json:
        sys.stdout.write(json.dumps(state, indent=2, default=str, allow_nan=False) + "\n")
    else:
        print_status(state, console)
    if state.get("registry_lost"):  # the registry lost what the promotion log names
        _fail(state["registry_lost"], 1)


@app.command(short_help="Move @champion back one step in the promotion log, and record it.")
def rollback(
    dataset: DatasetOpt = "synthetic",
    reason: Annotated[str, typer.Option(
        help="Why; kept in the promotion record.")] = "manual rollback",
    by: Annotated[str | None, typer.Option(help="Who; defaults to the OS user.")] = None,
    expected: Annotated[int | None, typer.Option(
        "--from", show_default="the champion by the promotion log when the command starts",
        help="The champion you mean to leave; refused if @champion is another version.")
    ] = None,
    to: Annotated[int | None, typer.Option(
        "--to", help="Go to this version instead, even one rolled back before; recorded "
                     "as your promotion.")] = None,
    home: HomeOpt = None,
) -> None:
    """Move @champion back to the champion before it in the promotion log, and record it.

    Never forward, and never to a version rolled back since (name one with --to). The
    champion is read from the promotion log as the command starts and compared again under
    the lock: if it moved meanwhile (another rollback, an auto-rollback, a cycle), nothing
    changes and one line says who moved it and when (exit 2)."""
    root = _environment(home)
    from cli.history import logged_champion

    leaving = expected if expected is not None else logged_champion(dataset)  # before MLflow
    from cli.outages import mlflow_unreachable, quiet_console
    from core.faults import hold_point
    from registry.audit import RegistryLost, check, version_link
    from registry.history import kind, read
    from registry.locks import command_promotion_lock, flush_events
    from registry.promote import PromotionError
    from registry.promote import rollback as do_rollback

    log = quiet_console(root)
    state, reg = _registry(dataset)
    try:
        hold_point("rollback")  # test-only: two rollbacks that both read before either moves
        with command_promotion_lock(reg.model_name, shared=state.remote):
            check(reg)
            record = do_rollback(reg, reason=reason, by=by, expected_from=leaving, to=to)
    except (PromotionError, RegistryLost) as exc:
        _fail(str(exc))
    except Exception as exc:  # a server that is down is one line; anything else goes up
        down = mlflow_unreachable(exc, reg.tracking_uri, log)
        if down is None:
            raise
        _fail(down, UNREACHABLE_EXIT)
    from core import events

    events.emit(events.ROLLBACK_EVENT, dataset, {
        "version": record["to"], "from": record["from"], "reason": reason,
        "by": record.get("by"), "action": record["action"],
        "link": version_link(reg, record["to"])})
    flush_events()  # sent before exit, without Prefect's "Still processing items" line
    said = kind(record, read(reg.promotions_path, reg.model_name))
    console.print(f"{reg.model_name}: @champion v{record['from']} -> v{record['to']} "
                  f"({said} by {record.get('by')}; @previous is now v{record['previous']})",
                  highlight=False, markup=False)


@app.command(short_help="Every move of @champion: when, from, to, by whom and why.")
def history(
    dataset: DatasetOpt = "synthetic",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header.")] = False,
    since: Annotated[str | None, typer.Option(
        help="Only moves at or after this ISO date or time (UTC unless given).")] = None,
    home: HomeOpt = None,
) -> None:
    """Every move of @champion: when, from, to, by whom, why, on what evidence."""
    _environment(home)
    from cli import history as shown

    try:
        found = shown.rows(dataset, shown.since(since))
    except ValueError as exc:
        _fail(f"--since {since}: {exc}" if since else str(exc))
    if as_json or as_csv:
        sys.stdout.write(shown.as_json(found) if as_json else shown.as_csv(found))
    else:
        console.print(shown.table(found, console.width))


@app.command(short_help="Answer a paused approval from a terminal.")
def approve(
    flow_run_id: Annotated[str, typer.Argument(
        help="The paused flow run (id from the Prefect UI).")],
    decision: Annotated[bool, typer.Option("--approve/--reject",
                                           help="Promote the challenger, or not.")],
    reason: Annotated[str, typer.Option(help="Why; kept with the version.")] = "",
    by: Annotated[str | None, typer.Option(
        envvar="GREENLIGHT_APPROVER",
        help="Who answers (required); kept with the version and in the promotion record.")]
    = None,
    home: HomeOpt = None,
) -> None:
    """Answer a paused approval from a terminal, through the Prefect API: the server that
    `greenlight up` runs on this state dir, or PREFECT_API_URL."""
    from uuid import UUID

    _environment(home)
    if not os.environ.get("PREFECT_API_URL"):
        _fail("approve talks to a Prefect server: start `greenlight up` on this state dir, "
              "or set PREFECT_API_URL")
    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        _fail(f"{flow_run_id}: not a flow run id")
    from prefect.client.orchestration import get_client

    from cli.outages import prefect_unreachable

    down = prefect_unreachable(os.environ["PREFECT_API_URL"])
    if down:
        _fail(down, UNREACHABLE_EXIT)
    if not (by or "").strip():  # the login name (often root) would record nobody in particular
        _fail("--by: who answers? Pass --by NAME or set GREENLIGHT_APPROVER")
    answer = {"decision": "approve" if decision else "reject", "reason": reason,
              "approver": by.strip()}
    with get_client(sync_client=True) as client:
        result = client.resume_flow_run(run_id, run_input=answer)
    # Prefect answers invalid input with HTTP 200 and status REJECT: check the status.
    if str(result.status.value) != "ACCEPT":
        _fail(f"flow run {flow_run_id}: {result.status.value}: "
              f"{getattr(result.details, 'reason', '') or 'not resumed'}")
    line(console, f"flow run {flow_run_id}: {'approved' if decision else 'rejected'} "
                  f"by {answer['approver']}")


@app.command(short_help="Send approvals, rollbacks and alarms to people.")
def notify(
    off: Annotated[bool, typer.Option("--off", help="Remove greenlight's automations.")]
    = False,
    home: HomeOpt = None,
) -> None:
    """Tell people when it matters: set up Prefect automations that send an approval
    waiting, a rollback, a drift or decay alarm and a quarantined batch through a
    notification block (GREENLIGHT_NOTIFY_URL, a webhook; or GREENLIGHT_NOTIFY_BLOCK,
    e.g. slack-webhook/NAME). `greenlight up` does it by itself when either is set."""
    _environment(home)
    from cli import notify as notices

    if not os.environ.get("PREFECT_API_URL"):
        _fail("notify talks to a Prefect server: start `greenlight up` on this state dir, "
              "or set PREFECT_API_URL")
    if off:
        console.print(f"removed {notices.remove()} greenlight automations")
        return
    where = notices.configured()
    if where is None:
        console.print(f"notifications are off: set {notices.NOTIFY_URL_ENV} (a webhook) or "
                      f"{notices.NOTIFY_BLOCK_ENV} (a Prefect notification block)")
        return
    from cli.outages import prefect_unreachable

    down = prefect_unreachable(os.environ["PREFECT_API_URL"])
    if down:
        _fail(down, UNREACHABLE_EXIT)
    try:
        made = notices.set_up()
    except Exception as exc:  # a block that is not there, a bad name: one line
        _fail(f"notifications not set up: {type(exc).__name__}: {exc}")
    line(console, f"{len(made)} automations send to {where}: {', '.join(made)}")


@app.command(short_help="Start Prefect, MLflow and Evidently; serve the deployments.")
def up(
    dataset: DatasetOpt = "synthetic",
    prefect_port: Annotated[int, typer.Option(help="Prefect server and UI port.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow server and UI port.")] = 5000,
    home: HomeOpt = None,
    evidently_port: Annotated[int, typer.Option(help="Evidently UI port.")] = 8000,
    prefect_db: Annotated[str | None, typer.Option(
        envvar="GREENLIGHT_PREFECT_DATABASE_URL",
        show_default="SQLite in the state dir",
        help="Prefect server database, e.g. postgresql://user@host:5432/prefect.")] = None,
    mlflow_db: Annotated[str | None, typer.Option(
        envvar="GREENLIGHT_MLFLOW_DATABASE_URL",
        show_default="SQLite in the state dir",
        help="MLflow backend store, e.g. postgresql://user@host:5432/mlflow.")] = None,
    policy: Annotated[str, typer.Option(
        help="The one promotion policy whose deployments are switched on: auto | manual | "
             "monitor; the others start paused.")] = "auto",
) -> None:
    """Start Prefect, MLflow and the Evidently UI on loopback; serve greenlight's deployments."""
    root = _environment(home)
    from cli.up import up as run_stack

    try:
        run_stack(root, prefect_port=prefect_port, mlflow_port=mlflow_port, dataset=dataset,
                  console=console, evidently_port=evidently_port, prefect_db=prefect_db,
                  mlflow_db=mlflow_db, policy=policy)
    except (RuntimeError, ValueError) as exc:  # a busy port, a dead server, a bad --policy
        _fail(str(exc))


@app.command(short_help="Serve @champion over HTTP; hot-swap it when it moves.")
def serve(
    dataset: DatasetOpt = "synthetic",
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] =
    "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    poll_seconds: Annotated[float, typer.Option(
        help="How often the registry is polled for a moved @champion/@challenger.")] = 5.0,
    shadow: Annotated[bool, typer.Option(
        "--shadow/--no-shadow", help="Also score every request with @challenger (logged, "
                                     "never returned).")] = False,
    review_below: Annotated[float, typer.Option(
        help="Flag needs_review when the confidence is under this.")] = 0.6,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1_000_000,
    max_records: Annotated[int, typer.Option(help="Most records per request.")] = 1000,
    body_timeout: Annotated[float, typer.Option(
        help="Seconds a request body may take to arrive; a stalled upload gets 408.")] = 10.0,
    limit_concurrency: Annotated[int, typer.Option(
        help="Most connections at once; past it, requests get 503.")] = 512,
    timeout_keep_alive: Annotated[int, typer.Option(
        help="Seconds an idle keep-alive connection is kept open.")] = 5,
    home: HomeOpt = None,
) -> None:
    """Serve @champion over HTTP, hot-swapping it when the alias moves (docs/serving.md).

    Each swap is one line here (alias, from, to, why). With GREENLIGHT_SERVE_TOKEN set,
    /predict, /model and /metrics want `Authorization: Bearer <token>`."""
    _environment(home)
    import uvicorn

    from serving.app import create_app
    from serving.guards import server_config, token_from_env

    root, reg = _registry(dataset)
    token = token_from_env()

    def swapped(alias: str, old: int | None, new: int | None, why: str) -> None:
        """One line per swap, as the data said it: nothing in `why` is read as markup."""
        from datetime import UTC, datetime

        console.print(f"{datetime.now(UTC):%H:%M:%S} @{alias}: "
                      f"{'none' if old is None else f'v{old}'} -> "
                      f"{'none' if new is None else f'v{new}'} ({why})",
                      markup=False, highlight=False, soft_wrap=True)

    from core.secrets import mask_url

    console.print(f"serving {reg.model_name} @champion on http://{host}:{port} "
                  f"(registry: {mask_url(reg.tracking_uri)}; "
                  f"predictions log: {root.root / 'predictions'}"
                  f"; {'bearer token required' if token else 'no token'})",
                  markup=False, highlight=False, soft_wrap=True)
    app_ = create_app(reg, root.root, poll_seconds=poll_seconds, shadow=shadow,
                      review_below=review_below, max_body_bytes=max_body_bytes,
                      max_records=max_records, body_timeout_s=body_timeout, token=token,
                      on_swap=swapped)
    uvicorn.Server(server_config(app_, host, port, limit_concurrency=limit_concurrency,
                                 timeout_keep_alive=timeout_keep_alive)).run()


def _seconds(text: str) -> float:
    """'30s', '2m', '1h' or a plain number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        _fail(f"--every {text}: not a duration (use e.g. 30s, 2m)")


@app.command(short_help="Ramp @challenger's share of requests while guards hold.")
def canary(
    dataset: DatasetOpt = "synthetic",
    ramp: Annotated[str, typer.Option(help="Percent steps, e.g. 5,25,50,100; 0 stops the "
                                           "canary.")] = "5,25,50,100",
    every: Annotated[str, typer.Option(help="Time at each step before its guards are "
                                            "checked (30s, 2m).")] = "30s",
    max_error_rate: Annotated[float, typer.Option(help="Guard: canary error rate.")] = 0.01,
    max_ks: Annotated[float, typer.Option(
        help="Guard: KS distance between canary and champion outputs (measured: "
             "docs/serving.md).")] = 0.45,
    latency_factor: Annotated[float, typer.Option(
        help="Guard: canary p99 latency at most this x champion's (+20 ms).")] = 2.0,
    min_predictions: Annotated[int, typer.Option(
        help="Predictions of each variant needed to judge a step.")] = 20,
    promote: Annotated[bool, typer.Option(
        "--promote/--no-promote", help="At 100% with the guards held, promote @challenger "
                                       "to @champion and set the canary back to 0%.")] = True,
    by: Annotated[str | None, typer.Option(help="Who; defaults to the OS user.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Ramp a @challenger the pre-ramp gate refused (recorded on the "
                        "version and in the canary history).")] = False,
    check_quality: Annotated[bool, typer.Option(
        "--quality/--no-quality", help="Guard: trip a @challenger proven worse on the "
                                       "labels of served rows, or estimated worse before "
                                       "them (the gate's margin).")] = True,
    home: HomeOpt = None,
) -> None:
    """Ramp the share of requests @challenger serves while the guards hold; else back to 0%.

    Before the ramp, a @challenger that never passed the gate against the current @champion
    is gated on the newest labelled rows (cli/pregate.py); proven worse, or no evidence, is
    refused (exit 2) unless --force. At each step, once errors, latency and score KS hold,
    the quality guard judges the rows served since the ramp began: on their labels where
    enough have landed, else on both versions' label-free estimates (docs/serving.md). A
    ramp that holds at 100% completes the rollout: @challenger becomes @champion
    (blue-green, recorded as a `canary` promotion)."""
    root = _environment(home)
    from serving.canary import Guards, set_fraction
    from serving.canary import ramp as do_ramp

    try:
        steps = [float(p) / 100 for p in ramp.split(",") if p.strip()]
    except ValueError:
        _fail(f"--ramp {ramp}: expected percentages such as 5,25,50,100")
    if not steps or any(not 0 <= s <= 1 for s in steps):
        _fail(f"--ramp {ramp}: each step must be between 0 and 100")
    if steps == [0.0]:
        set_fraction(root, 0.0, "stopped by hand")
        console.print("canary stopped (0%)")
        return
    guards = Guards(max_error_rate=max_error_rate, max_ks=max_ks, latency_factor=latency_factor,
                    min_predictions=min_predictions)
    state_home, reg = _registry(dataset)
    import getpass

    from cli.pregate import before_ramp
    from tasks.data.spec import load_spec

    who = by or getpass.getuser()
    spec, training = load_spec(dataset), _settings(dataset, None, root).models()["training"]
    outcome = before_ramp(state_home, reg, spec, training, canary_home=root, force=force,
                          by=who)
    if not outcome.go:
        _fail(outcome.line)
    line(console, outcome.line)
    from cli.pregate import quality_guard

    quality = quality_guard(state_home, reg, spec, training) if check_quality else None
    reg = reg if promote else None
    state = do_ramp(root, steps, _seconds(every), guards, reg=reg, by=by, say=console.print,
                    quality=quality)
    console.print(f"canary at {state['fraction']:.0%}: {state['reason']}")
    if state["fraction"] == 0.0 and not state.get("promoted"):
        raise typer.Exit(1)


@app.command(short_help="Land served predictions whose labels arrived as a batch.")
def harvest(
    dataset: DatasetOpt = "synthetic",
    home: HomeOpt = None,
) -> None:
    """Land served predictions whose labels have arrived as a training batch in landing/.

    Labels go in $GREENLIGHT_HOME/labels/ keyed by `prediction_id` (the service's
    `<request_id>-<index>`). Harvesting again with nothing new lands nothing."""
    _environment(home)
    from tasks.data.harvest import harvest as do_harvest

    root, reg = _registry(dataset)
    from tasks.data.spec import load_spec

    result = do_harvest(root, load_spec(dataset), reg.model_name)
    if result.path is None:
        waiting = "no new labels" if result.waiting is None else \
            f"{result.waiting} served records wait for labels"
        line(console, f"nothing new to harvest ({waiting}, {result.already} already harvested)")
        return
    line(console, f"landed {result.path} ({result.rows} rows; {result.waiting} served records "
                  f"wait for labels, {result.already} already harvested)")


@app.command(short_help="Let a batch held for implausible labels through.")
def release(
    batch: Annotated[str, typer.Argument(help="Id (or a unique prefix) of the held batch.")],
    by: Annotated[str, typer.Option("--by", help="Who lets it through (recorded).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
    home: HomeOpt = None,
) -> None:
    """Let a held batch through: a batch whose labels looked implausible (one class, or a
    share outside the suite's bound) was kept from training and gating; the next cycle
    monitors, trains and gates on it. Recorded in the manifest: who, when, why."""
    _environment(home)
    from tasks.data import manifest
    from tasks.data.home import Home

    if not by.strip() or not reason.strip():
        _fail("release needs --by NAME and --reason TEXT: both go into the record")
    try:
        record = manifest.release(Home.from_env().manifest, batch, by=by.strip(),
                                  reason=reason.strip())
    except ValueError as exc:
        _fail(str(exc))
    line(console, f"released batch {record['id']} ({record.get('file')}) by {by.strip()}: "
                  f"the next cycle trains and gates on it (it was held: "
                  f"{record.get('held_reason')})", highlight=False)


def main() -> None:
    """Console entry point: a failure is one readable line; the traceback goes to a log file."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: never show a raw traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        _last_words(f"{type(exc).__name__}: {first} ({_keep_traceback(exc)})")
        sys.exit(1)


def _keep_traceback(exc: BaseException) -> str:
    """Append `exc`'s traceback to <state dir>/logs/errors.log; say where it went, or, when
    it cannot be written (a full disk, a read-only state dir), why not: never raise."""
    import traceback

    try:
        log = _local_root(os.environ.get("GREENLIGHT_HOME"))[0] / "logs" / "errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            traceback.print_exception(exc, file=fh)
        return f"traceback in {log}"
    except Exception as failed:  # noqa: BLE001 (the last resort must not fail itself)
        return f"traceback not kept: {type(failed).__name__}: {failed}"


def _last_words(message: str) -> None:
    """The one error line on stderr, whatever else is broken: a stderr that cannot be
    written to either is given up on in silence."""
    try:
        line(err, ("error:", "bold red"), f" {message}")
    except Exception:  # noqa: BLE001 (a closed or full stderr: nothing left to tell)
        pass


if __name__ == "__main__":
    main()
