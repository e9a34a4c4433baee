"""`python -m precompute run --config precompute/configs/<profile>.yaml [--stage NAME] [--out DIR]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from peo.config import load_config
from peo.errors import PeoError
from precompute.stages import STAGES, run_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m precompute")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipeline (finished stages are skipped)")
    run.add_argument("--config", required=True, type=Path, help="a profile YAML, e.g. precompute/configs/cpu.yaml")
    run.add_argument("--stage", choices=STAGES, help="run only this stage")
    run.add_argument("--out", type=Path, help="assets folder (default: the profile's `out`)")
    run.add_argument("--force", action="store_true", help="rerun stages even if their outputs are valid")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set data.root=/data (YAML value)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import yaml

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    try:
        cfg = load_config(args.config, overrides)
        run_pipeline(cfg, out=args.out, only=args.stage, force=args.force)
    except PeoError as err:  # config, data, model source, adapters: one line naming what to fix
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
