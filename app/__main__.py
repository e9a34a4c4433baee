"""`python -m app [--assets DIR] [--host 127.0.0.1] [--port N] [--share-safe]`: the PEO demo on the committed assets.

Also `peo-app` (the console script) and `python space_app.py` (a Hugging Face Space's app_file). Binds 127.0.0.1
unless `--host` says otherwise or the env var SPACE_ID is set (Hugging Face Spaces: 0.0.0.0).
The models load in the background: the page (front, picker, precomputed answers) is up in seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app", description="PEO demo: Pareto front + side-by-side chat")
    parser.add_argument("--assets", type=Path, default=None, help="assets folder (default: assets/)")
    parser.add_argument("--host", default=None,
                        help="address to bind (default 127.0.0.1; 0.0.0.0 when SPACE_ID is set)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share-safe", action="store_true",
                        help="public-facing mode: no Gradio share link, no error tracebacks shown, small queue")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--policy-form", choices=("auto", "adapters", "merged"), default="auto",
                        help="how the picked policy is formed (auto: merged on a GPU, adapter scales on CPU)")
    parser.add_argument("--max-context-tokens", type=int, default=1024,
                        help="prompt + answer token budget per column (history is trimmed to fit)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="events run at once (default 16: chat turns share one running batch, so they wait "
                             "on tokens, not on each other)")
    parser.add_argument("--export-ttl-minutes", type=positive, default=60.0,
                        help="an export zip (and Gradio's copy) is deleted this long after it was made (default 60)")
    parser.add_argument("--export-max-mb", type=positive, default=2048.0,
                        help="cap on the exports kept at once, oldest deleted first; a larger single export is "
                             "refused (default 2048 MB: about three merged SmolLM2-135M models)")
    parser.add_argument("--votes-dir", type=Path, default=None,
                        help="folder of the votes database (default: $PEO_VOTES_DIR, else /data/peo-votes on a Space "
                        "with persistent storage, else data/votes/)")
    return parser.parse_args(argv)


def resolve_host(host: str | None) -> str:
    if host:
        return host
    return "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"


def interrupt(signum, frame) -> None:
    """SIGTERM (a Space stopping, `kill`) ends the server as Ctrl-C does, so the exports are removed on the way
    out; Python's default SIGTERM handling would skip atexit and leave them behind."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from app.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from app import exports

    exports.configure(args.export_ttl_minutes, args.export_max_mb)
    exports.point_gradio_here()  # before Gradio is imported: it reads GRADIO_TEMP_DIR then
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    # imported here, not at the top: they load torch and gradio (slow), which --help and the tests of parse_args
    # do not need; and TOKENIZERS_PARALLELISM is set before they load
    from app.callbacks import App
    from app.ui import build_demo, launch_kwargs
    from peo.errors import PeoError
    from peo.votes import VoteStore

    try:
        votes = VoteStore(args.votes_dir)  # a corrupt or foreign database stops the start here, untouched
        app = App.load(args.assets, device=args.device, form=args.policy_form,
                       max_context_tokens=args.max_context_tokens)
    except PeoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    app.engine.start()
    demo = build_demo(app, votes=votes)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=16 if args.share_safe else None)
    port = args.port or int(os.environ.get("GRADIO_SERVER_PORT", 7860))
    exports.remove_on_close(demo)
    try:
        demo.launch(server_name=resolve_host(args.host), server_port=port, share=False,
                    show_error=not args.share_safe, **launch_kwargs())
    finally:
        exports.remove_all()  # also registered with atexit; this covers a launch that returns or raises
    return 0


if __name__ == "__main__":
    if not __package__:  # `python app/__main__.py`: the packages beside it are not importable from here
        sys.exit("error: run the app as `python -m app`, `peo-app` or `python space_app.py` (from the repository root)")
    sys.exit(main())
