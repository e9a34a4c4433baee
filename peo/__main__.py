"""`python -m peo export …`, `validate-data …`, `votes export …`, `serve …` and `judge …`: the stable command-line
surface."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from peo.aspects import DEFAULT_ASPECTS
from peo.data.sources import LOADERS
from peo.errors import PeoError
from peo.names import PEO


def _export(args: argparse.Namespace) -> int:
    from peo.export import export_policy

    point, model = None, None
    if args.point is not None:  # a point by the model-name syntax, for any number of aspects
        model = args.point if args.point.strip().startswith(f"{PEO}:") else f"{PEO}:{args.point}"
    elif args.policy is None:
        if args.lambda_help is None:
            print("error: give --policy, --point or --lambda-help (with optional --phi-help/--phi-harm)",
                  file=sys.stderr)
            return 2
        point = (args.lambda_help, args.phi_help, args.phi_harm)
    try:
        folder = export_policy(args.assets, args.out, policy=args.policy, point=point, model=model, fmt=args.format)
    except PeoError as err:  # export, assets, adapter or model-source problems: one line each
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {folder}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from peo.data.errors import DataError
    from peo.data.validate import format_summary, validate_file

    try:
        summary = validate_file(args.path, fmt=args.format, skip_bad=not args.strict, aspect=args.aspect)
    except (DataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    bad = sum(n for reason, n in summary.dropped.items() if reason.startswith("bad row"))
    if bad:
        try:  # the first bad row, with file, line and field
            validate_file(args.path, fmt=args.format, skip_bad=False, aspect=args.aspect)
        except (DataError, ValueError) as err:
            print(f"error: {bad} bad rows; the first: {err}", file=sys.stderr)
        return 1
    return 0


def _votes_export(args: argparse.Namespace) -> int:
    from peo.votes import VoteStore, export_pairs

    with VoteStore(args.votes_dir, create=False) as store:
        summary = export_pairs(store, args.out)
    dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.dropped.items())) or "none"
    print(f"wrote {summary.pairs} pairs from {summary.votes} votes to {args.out} (dropped: {dropped})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import logging

    from peo.serve import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return serve(args.assets, host=args.host, port=args.port, device=args.device, max_batch=args.max_batch,
                 max_context_tokens=args.max_context_tokens)


def _judge(args: argparse.Namespace) -> int:
    import json

    from peo.judge import API_KEY_ENV, format_summary, run_judge, write_pairs_from_assets

    if args.from_assets is not None:
        if not (args.point and args.opponent):
            print("error: --from-assets needs --point and --opponent", file=sys.stderr)
            return 2
        n = write_pairs_from_assets(args.from_assets, args.point, args.opponent, args.pairs, split=args.split)
        print(f"wrote {n} pairs ({args.point} as answer_a vs {args.opponent} as answer_b, {args.split}) "
              f"to {args.pairs}")
        if args.base_url is None and args.model is None:
            return 0
    if args.base_url is None or args.model is None:
        print("error: give --base-url and --model (the judge endpoint and model)", file=sys.stderr)
        return 2
    run = run_judge(args.pairs, args.base_url, args.model, cache_path=args.cache, budget=args.budget, rpm=args.rpm,
                    out=args.out, max_tokens=args.max_tokens)
    if args.out is None:
        for row in run.results:
            print(json.dumps(row, ensure_ascii=False))
    print(f"judge {args.model}: {run.new_requests} new requests, {run.cache_hits} cached judgments"
          f"{'' if os.environ.get(API_KEY_ENV) else f' (no ${API_KEY_ENV}: no key sent)'}", file=sys.stderr)
    print(format_summary(run.summary), file=sys.stderr)
    if run.budget_reached:
        print(f"budget of {args.budget} new requests reached: {run.pairs_left} pairs left; rerun to resume "
              "(judged ones come from the cache)", file=sys.stderr)
    if args.out is not None:
        print(f"wrote {args.out} and {args.out.with_suffix('.summary.json')}", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peo")
    sub = parser.add_subparsers(dest="command", required=True)

    export = sub.add_parser("export", help="write one policy as a merged HF folder or a PEFT adapter")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--policy", metavar="POLICY",
                       help=f"a fixed policy: {', '.join(DEFAULT_ASPECTS.baselines)} "
                            "(with other aspects: ref, each aspect, joint)")
    which.add_argument("--point", metavar="SPEC",
                       help="a PEO point of any number of aspects, as `peo serve` names it: e.g. "
                            "lambda_help=0.5,lambda_harm=0.25,phi_brief=1 (every free lambda; a phi left out is 0) "
                            "or c_help=1,c_harm=0.5,c_brief=0.5; within the assets' swept range")
    which.add_argument("--lambda-help", type=float, help="two aspects: λ in [0, 1]")
    export.add_argument("--phi-help", type=float, default=0.0, help="two aspects, with --lambda-help")
    export.add_argument("--phi-harm", type=float, default=0.0, help="two aspects, with --lambda-help")
    export.add_argument("--out", required=True, type=Path, help="new (or empty) output folder")
    export.add_argument("--format", choices=["merged", "adapter"], default="merged")
    export.add_argument("--assets", type=Path, default=None, help="assets folder (default: the committed assets/)")
    export.set_defaults(run=_export)

    validate = sub.add_parser("validate-data", help="check a preference file and summarize what would be kept")
    validate.add_argument("path", type=Path)
    validate.add_argument("--format", choices=list(LOADERS), default=None,
                          help="default: detected from the first record")
    validate.add_argument("--aspect", default=None,
                          help="the aspect the pairs are for (help, harm, or a run's own; default: the format's)")
    validate.add_argument("--strict", action="store_true",
                          help="stop at the first bad row (default: count them all, then exit 1 naming the first)")
    validate.set_defaults(run=_validate)

    votes = sub.add_parser("votes", help="the app's stored votes")
    votes_sub = votes.add_subparsers(dest="votes_command", required=True)
    votes_export = votes_sub.add_parser(
        "export", help="write votes as TRL conversational prompt/chosen/rejected pairs (JSONL; ties and all-bad "
        "votes dropped)")
    votes_export.add_argument("--out", required=True, type=Path, help="the JSONL file to write")
    votes_export.add_argument("--votes-dir", type=Path, default=None,
                              help="the app's votes folder (default: $PEO_VOTES_DIR, else data/votes/)")
    votes_export.set_defaults(run=_votes_export)

    serve = sub.add_parser("serve", help="an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models) for every "
                           "point of the family and the baselines; $PEO_API_KEY, when set, is required as a Bearer key")
    serve.add_argument("--assets", type=Path, default=None, help="assets folder (default: the committed assets/)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    serve.add_argument("--max-batch", type=_positive_int, default=64,
                       help="requests decoding together at most; more wait for a place (default 64)")
    serve.add_argument("--max-context-tokens", type=_positive_int, default=1024,
                       help="prompt + max_tokens budget per request, as the app's (default 1024)")
    serve.set_defaults(run=_serve)

    judge = sub.add_parser("judge", help="pairwise LLM judging (AlpacaEval's way, both orders) through any "
                           "OpenAI-compatible endpoint; $PEO_JUDGE_API_KEY, when set, is sent as a Bearer key")
    judge.add_argument("--pairs", required=True, type=Path,
                       help="JSONL, one object a line: id, prompt (text or chat messages), answer_a, answer_b, "
                            "optional aspect (helpfulness, the default, or harmlessness)")
    judge.add_argument("--base-url", default=None, help="the endpoint, e.g. http://127.0.0.1:8000/v1")
    judge.add_argument("--model", default=None, help="the judge model's name at that endpoint")
    judge.add_argument("--cache", type=Path, default=None,
                       help="SQLite cache of judgments (default: next to the pairs file, .judge-cache.sqlite)")
    judge.add_argument("--budget", type=_positive_int, default=None,
                       help="new requests at most this run; then stop and report the pairs left (default: no limit)")
    judge.add_argument("--rpm", type=float, default=None, help="requests per minute at most (default: no limit)")
    judge.add_argument("--max-tokens", type=_positive_int, default=4, help="the judge's reply length (default 4)")
    judge.add_argument("--out", type=Path, default=None,
                       help="results JSONL (one line per pair: both raw verdicts and the combined one) and "
                            "<out>.summary.json; an existing file is added to (a pair judged again by the same judge "
                            "model replaces its line), e.g. assets/report/judge_verdicts.jsonl for the report; "
                            "default: the rows on stdout")
    judge.add_argument("--from-assets", type=Path, default=None,
                       help="first write --pairs from this assets folder's answers.parquet: --point (answer_a) vs "
                            "--opponent (answer_b); benign prompts for helpfulness, harmful for harmlessness (a "
                            "run's other aspects' prompts are left out)")
    judge.add_argument("--point", default=None, help="a model_id of answers.parquet, e.g. c+1.500_+0.500")
    judge.add_argument("--opponent", default=None, help="a model_id of answers.parquet, e.g. c+0.500_+0.500")
    judge.add_argument("--split", choices=["dev", "test"], default="test", help="answers' split (default test)")
    judge.set_defaults(run=_judge)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except PeoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
