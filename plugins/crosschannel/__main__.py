"""Command line: `python -m crosschannel <command>` (run with plugins/ on PYTHONPATH; the Makefile does).

    generate [--customers N] [--force]      build the synthetic retailer's history in the source DB
    advance [--days N]                      simulate the next day(s) live (inserts, updates, deletes)
    truth --day YYYY-MM-DD                  print the ground-truth probabilities summary for a day
    import-csv --orders F [--customers F]   load your own orders (and customers) into the source DB
    backtest --orders F --cutoffs D,D       the models on your own history: scored at each cutoff against what
                                            happened after it, beside the RFM and BG/NBD baselines
    demo [--days N]                         the whole chain on the local target, with a summary
    aws-plan --partition D [--out DIR]      every request the aws target would send for D, checked, as JSON
    trigger DAG_ID --partition D [--conf J] a manual run of a DAG for day D (its partition key) in the Airflow
                                            metadata DB of $AIRFLOW_HOME; `airflow dags trigger` takes no key
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from crosschannel.core.config import ConfigError, get_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crosschannel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="build the synthetic retailer's history")
    gen.add_argument("--customers", type=int, help="customers at the start of the history (default: config)")
    gen.add_argument("--force", action="store_true", help="drop and rebuild a source DB that holds data")
    adv = commands.add_parser("advance", help="simulate the next day(s) in the source DB")
    adv.add_argument("--days", type=int, default=1)
    truth = commands.add_parser("truth", help="summarize the true probabilities on a day")
    truth.add_argument("--day", required=True, type=dt.date.fromisoformat)
    imp = commands.add_parser("import-csv", help="load an orders CSV (and a customers CSV) into the source DB")
    for command in (imp, back := commands.add_parser("backtest", help="run the chain at each cutoff of your own "
                                                                         "history and score what happened after")):
        command.add_argument("--orders", required=True)
        command.add_argument("--customers")
        command.add_argument("--date-format", help="strftime codes of the dates, e.g. %%d/%%m/%%Y (default: ISO 8601)")
        command.add_argument("--delimiter", default=",", help="between fields: , ; tab | or whitespace (default ,)")
        command.add_argument("--columns", type=_renames, default={}, help="the orders file's own column names, e.g. "
                                                                         "order_date=date,amount=dollar_value")
    back.add_argument("--cutoffs", required=True, type=lambda text: [dt.date.fromisoformat(d.strip()) for d in
                                                                     text.split(",")], help="days, comma-separated")
    back.add_argument("--root", help="where each cutoff's run and the report go (default: .data/backtest)")
    rep = commands.add_parser("replay", help="run the DAGs day by day over an imported history, each day as it was")
    rep.add_argument("--from", dest="first", required=True, type=dt.date.fromisoformat)
    rep.add_argument("--to", dest="last", required=True, type=dt.date.fromisoformat)
    rep.add_argument("--dags", default="retail_ingest,retail_trusted", type=lambda text: tuple(text.split(",")),
                     help="comma-separated, run in this order each day (default: retail_ingest,retail_trusted)")
    demo = commands.add_parser("demo", help="run the chain on the local target and print a summary")
    demo.add_argument("--days", type=int, default=3, help="partitions to run after the history (default 3)")
    plan = commands.add_parser("aws-plan", help="render and check every request the aws target would send for a "
                                                "partition, calling no AWS API")
    plan.add_argument("--partition", required=True, type=dt.date.fromisoformat)
    plan.add_argument("--out", help="folder for the JSON requests (default: aws-plan-<partition>)")
    plan.add_argument("--run-id", help="the run id whose hash job names carry (default: manual__<partition>...)")
    trigger = commands.add_parser("trigger", help="a manual run of a DAG for a day, keyed by it")
    trigger.add_argument("dag_id")
    trigger.add_argument("--partition", required=True, type=dt.date.fromisoformat)
    trigger.add_argument("--conf", type=json.loads, default={}, help='run flags, e.g. \'{"force_publish": true}\'')
    args = parser.parse_args(argv)

    if args.command == "generate":
        from crosschannel.sim import generator

        settings = get_config().generator
        if args.customers:
            settings = settings.model_copy(update={"customers": args.customers})
        print(json.dumps(generator.generate(settings, force=args.force), indent=2))
    elif args.command == "advance":
        from crosschannel.sim import generator

        print(json.dumps(generator.advance(args.days), indent=2))
    elif args.command == "truth":
        from crosschannel.sim import generator

        frame = generator.Retailer.load(generator.state_path()).truth(args.day)
        print(frame.describe().to_string())
    elif args.command == "import-csv":
        from crosschannel.sim import byod

        result = byod.import_csv(args.orders, args.customers, date_format=args.date_format, columns=args.columns,
                                 delimiter="\t" if args.delimiter == "tab" else args.delimiter)
        print(json.dumps(result, indent=2))
        absent = [name for name in result["sources_absent"] if getattr(get_config().sources, name)]
        if absent:
            print("These files bring no " + ", ".join(absent) + ": declare them in include/crosschannel.yaml (unless "
                  "another feed brings them, e.g. Segment for events), or the gates fail on what is missing:\n"
                  "sources: {" + ", ".join(f"{name}: false" for name in absent) + "}", file=sys.stderr)
    elif args.command == "backtest":
        from crosschannel.sim import backtest

        backtest.run(args.orders, args.cutoffs, args.root, args.customers, date_format=args.date_format,
                     delimiter="\t" if args.delimiter == "tab" else args.delimiter, columns=args.columns)
    elif args.command == "replay":
        from crosschannel.sim import backtest

        backtest.replay(args.first, args.last, args.dags)
    elif args.command == "demo":
        from crosschannel.sim import demo

        demo.run(days=args.days)
    elif args.command == "aws-plan":
        from crosschannel.wiring import aws_plan

        rows = aws_plan.write_plan(args.partition, Path(args.out or f"aws-plan-{args.partition}"), args.run_id)
        print(aws_plan.table(rows))
    elif args.command == "trigger":
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.exceptions import DagNotFound
        from airflow.models import DagModel
        from airflow.utils.types import DagRunTriggeredByType

        if args.partition >= dt.datetime.now(dt.UTC).date():
            raise ValueError(f"partition {args.partition}: the day has not ended yet (partitions are UTC days): "
                             "a run would process part of it")
        try:
            run = trigger_dag(args.dag_id, triggered_by=DagRunTriggeredByType.CLI, conf=args.conf,
                              partition_key=args.partition.isoformat())
        except DagNotFound as exc:
            raise ValueError(f"{exc} of AIRFLOW_HOME {os.environ.get('AIRFLOW_HOME', '~/airflow')}: is it the "
                             "bundle's home, and has the dag-processor parsed the DAGs?") from None
        print(f"{args.dag_id}: run {run.run_id} for partition {run.partition_key} ({run.state})")
        if DagModel.get_current(args.dag_id).is_paused:
            print(f"{args.dag_id} is paused: the run waits until it is unpaused (bin/airflow dags unpause "
                  f"{args.dag_id}, or the toggle in the UI)", file=sys.stderr)
    return 0


def _renames(text: str) -> dict[str, str]:
    """--columns ours=theirs,...: our column names for the file's own."""
    pairs = [pair.split("=", 1) for pair in text.split(",") if pair.strip()]
    if any(len(pair) != 2 or not all(p.strip() for p in pair) for pair in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected ours=theirs pairs, comma-separated")
    return {ours.strip(): theirs.strip() for ours, theirs in pairs}


def run(argv: list[str] | None = None) -> int:
    """main() with the bundle's input errors printed as one clear line instead of a traceback."""
    try:
        return main(argv)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
