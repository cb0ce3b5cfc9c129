"""`python -m experiments.ablations list | run GROUP --corpus DIR | report`: the ablation runner's command line
(the package docstring describes group files and what a run writes)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from . import __doc__ as PACKAGE_DOC
from .group import GROUPS_DIR, AblationGroupError, list_groups
from .run import run_group
from .table import DEFAULT_CORPUS, DEFAULT_OUT, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.ablations", description=PACKAGE_DOC.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help=f"show the groups in {GROUPS_DIR}")
    run = commands.add_parser("run", help="train, evaluate and tabulate one group (resumable)")
    run.add_argument("group", help="group file, e.g. experiments/ablations/groups/table3-vae.yaml (or its name)")
    run.add_argument("--corpus", required=True, help="corpus folder built by python -m training.data")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (the app reads its CSVs)")
    run.add_argument("--seeds", type=int, nargs="+", default=None, help="replace the group's seed list")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="training config override for every variant, applied last (repeatable)")
    run.add_argument("--eval", dest="evaluate_sets", action="append", default=[], metavar="KEY=VALUE",
                     help="evaluate-section override, e.g. --eval limit=8 (repeatable)")
    run.add_argument("--var", dest="variables", action="append", default=[], metavar="NAME=VALUE",
                     help="value of a ${NAME} placeholder of the group file (repeatable)")
    report = commands.add_parser("report", help="write REPORT.md: our tables beside the paper's Tables 1–4")
    report.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder written by `run`")
    report.add_argument("--corpus", default=str(DEFAULT_CORPUS),
                        help="corpus named in the commands printed for groups with no results")
    args = parser.parse_args(argv)
    if args.command == "report":
        print(write_report(args.out, args.corpus))
        return 0
    if args.command == "list":
        for group in list_groups():
            table = f"Table {group.paper_table}" if group.paper_table else "—"
            print(f"{group.name:<18} {group.kind:<4} {table:<8} {len(group.variants)} variants "
                  f"({', '.join(group.variants)}); budget {group.budget}; seeds {group.seeds}\n"
                  f"{'':<18} {group.description}")
        return 0
    path = Path(args.group)
    if not path.suffix and not path.exists():
        path = GROUPS_DIR / f"{args.group}.yaml"
    variables = {}
    for item in args.variables:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--var {item!r} must look like NAME=VALUE")
        variables[name] = yaml.safe_load(value)
    try:
        table = run_group(path, args.corpus, args.out, args.seeds, args.sets, args.evaluate_sets, variables)
    except (FileNotFoundError, AblationGroupError) as error:  # a bad group file or corpus: a message, no traceback
        parser.exit(2, f"error: {error}\n")
    failed = int((table["status"] == "failed").sum()) if len(table) else 0
    print(f"wrote {args.out / (path.stem + '.csv')}: {len(table)} rows, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
