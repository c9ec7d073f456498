"""Command line: build the book, pre-train, keep the chapters' parameter cells in sync.

    python -m aptutils book [--profile cpu] [-p NAME VALUE ...] [--chapters 01 02] [--no-render]
    python -m aptutils pretrain [--profile paper] [-p NAME VALUE ...] [--publish]   (also under torchrun)
    python -m aptutils sync-parameters
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .core.errors import DataError, ParameterError
from .core.params import DEFAULT_PROFILE, PROFILE_NAMES, resolve
from .core.store import absolute_path_variables


def parse_value(text: str):
    """A -p value as papermill reads it: None, bool, int, float, else the string."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aptutils", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("book", "pretrain"):
        command = commands.add_parser(name)
        command.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILE_NAMES)
        command.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                             metavar=("NAME", "VALUE"), help="override one knob (repeatable)")
    book = commands.choices["book"]
    book.add_argument("--chapters", nargs="*", help="chapter numbers to execute (default: all)")
    book.add_argument("--no-render", action="store_true", help="execute only, skip jupyter-book")
    commands.choices["pretrain"].add_argument(
        "--publish", action="store_true",
        help="copy the trained models into book/models with their cards (the book's defaults)")
    commands.add_parser("render", help="render book/ into _build/html (warnings are errors)")
    commands.add_parser("sync-parameters", help="rewrite the chapters' parameters cells")
    args = parser.parse_args(argv)
    absolute_path_variables()  # papermill runs the chapters from the repository root
    try:
        return COMMANDS[args.command](args)
    except (ParameterError, DataError) as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2


def chosen_parameters(args) -> dict:
    """The --profile and -p values, validated before any work starts."""
    chosen = {"profile": args.profile, **{n: parse_value(v) for n, v in args.parameter}}
    resolve(chosen)
    return chosen


def build_book(args) -> int:
    from .core.device import resolved_device
    from .notebooks import (
        BOOK_DIR,
        EXECUTION_PAGE,
        VERDICTS_PAGE,
        chapter_sources,
        execute_chapter,
        execution_page,
        record_execution,
        verdicts_page,
    )

    chosen = chosen_parameters(args)
    known = {s.name[:2] for s in chapter_sources()}
    unknown = sorted(set(args.chapters or ()) - known)
    if unknown:
        raise ParameterError(f"--chapters {' '.join(unknown)}: no such chapter; the chapters are "
                             f"{' '.join(sorted(known))}")
    sources = [s for s in chapter_sources() if not args.chapters or s.name[:2] in args.chapters]
    device = resolved_device(resolve(chosen))
    for source in sources:
        started = time.time()
        print(f"Executing {source.name} ({chosen})", flush=True)
        execute_chapter(source, BOOK_DIR / source.name, chosen)
        seconds = time.time() - started
        record_execution(source.stem, chosen["profile"], seconds, device)
        print(f"{source.name}: {seconds:.0f} s", flush=True)
    EXECUTION_PAGE.write_text(execution_page())
    VERDICTS_PAGE.write_text(verdicts_page())
    return 0 if args.no_render else render(args)


def render(args) -> int:
    from .core.store import REPO_ROOT

    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    return subprocess.call([str(jupyter_book), "build", str(REPO_ROOT), "--all", "-W", "--keep-going"])


def pretrain(args) -> int:
    from .data.pretraining import pretraining_data
    from .training.pretrain import model_params, pretrain_series
    from .training.published import PUBLISHED_DIR, publish

    chosen = chosen_parameters(args)
    settings = resolve(chosen)
    for ws, model in pretrain_series(settings).items():
        print(f"W_S={ws}: {model.folder}")
        if not args.publish or model.folder.parent == PUBLISHED_DIR:
            continue
        command = "python -m aptutils pretrain " + " ".join(
            [f"--profile {settings.profile}"] + [f"-p {n} {v}" for n, v in args.parameter]
            + ["--publish"])
        data = pretraining_data(settings)
        target = publish(model.folder, model_params(settings, data, ws),
                         f"{settings.profile}-ws{ws}", command,
                         extra={"tokenizer_key": data.tokenizer_key})
        print(f"W_S={ws}: published to {target}")
    return 0


def sync_parameters(args) -> int:
    from .notebooks import chapter_sources
    from .notebooks import sync_parameters as sync

    for source in chapter_sources():
        print(f"{source.name}: {'rewritten' if sync(source) else 'in sync'}")
    return 0


COMMANDS = {"book": build_book, "render": render, "pretrain": pretrain,
            "sync-parameters": sync_parameters}

if __name__ == "__main__":
    sys.exit(main())
