"""The ``gtools`` command: ``gtools demo`` and ``gtools check FILE``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _split(s: str) -> list[str]:
    return [c.strip() for c in s.split(",") if c.strip()]


def _check(args: argparse.Namespace) -> int:
    import pandas as pd

    from gtools.errors import DataError
    from gtools.panel import PersonTime, validate_long

    try:
        df = pd.read_csv(args.file)
    except (OSError, pd.errors.ParserError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.schema == "intervals":
            PersonTime.from_intervals(
                df, id=args.id, start=args.start, stop=args.stop, treatment=args.treatment,
                covariates=_split(args.covariates), baseline=_split(args.baseline), event=args.event,
                censor=args.censor, step=args.step,
            )
            problems = []
        else:
            _, _, problems = validate_long(
                df, id=args.id, time=args.time, treatment=args.treatment, covariates=_split(args.covariates),
                baseline=_split(args.baseline), outcome=args.outcome, outcome_type=args.outcome_type,
                censor=args.censor, competing=args.competing,
            )
    except DataError as exc:
        problems = exc.problems
    if problems:
        for p in problems:
            print(p)
        print(f"{len(problems)} problem(s) in {args.file}", file=sys.stderr)
        return 1
    print(f"{args.file}: no problems found ({len(df)} rows)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gtools.demo import run_demo

    return run_demo(quick=args.quick, n_boot=args.n_boot, n_jobs=args.n_jobs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gtools", description="g-methods for longitudinal data")
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run every method on the embedded sepsis and oncology cohorts")
    d.add_argument("--quick", action="store_true", help="smaller Monte Carlo and bootstrap")
    d.add_argument("--n-boot", type=int, default=None, help="bootstrap replicates (default 50)")
    d.add_argument("--n-jobs", type=int, default=-1, help="parallel workers for the bootstrap")
    d.set_defaults(func=_demo)

    c = sub.add_parser("check", help="validate a CSV table against gtools' data schemas")
    c.add_argument("file")
    c.add_argument("--schema", choices=["long", "intervals"], default="long")
    c.add_argument("--id", required=True)
    c.add_argument("--time", default="time", help="interval column (long schema)")
    c.add_argument("--treatment")
    c.add_argument("--covariates", default="", help="comma-separated time-varying covariates")
    c.add_argument("--baseline", default="", help="comma-separated baseline covariates")
    c.add_argument("--outcome")
    c.add_argument("--outcome-type", default="survival", choices=["survival", "binary", "continuous"])
    c.add_argument("--censor")
    c.add_argument("--competing")
    c.add_argument("--start", default="start", help="record start column (intervals schema)")
    c.add_argument("--stop", default="stop", help="record stop column (intervals schema)")
    c.add_argument("--event", help="event column (intervals schema)")
    c.add_argument("--step", type=float, default=1.0, help="grid step (intervals schema)")
    c.set_defaults(func=_check)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
