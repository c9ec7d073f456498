"""Command line: build the book, pre-train, keep the chapters' parameter cells in sync.

    python -m aptutils book [--profile cpu] [-p NAME VALUE ...] [--chapters 01 02] [--no-render]
    python -m aptutils pretrain [--profile paper] [-p NAME VALUE ...] [--publish]   (also under torchrun)
    python -m aptutils sync-parameters
    python -m aptutils import-part gpu FOLDER        (the GPU run's executed chapters into book/gpu/)
    python -m aptutils sweep 03 [--profile cpu] -p threshold 0.3,0.5,0.7 [-p NAME V1,V2 ...] [--out DIR]
"""
from __future__ import annotations

import argparse
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


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2), like the book's."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}; `{self.prog} --help` lists what is allowed\n")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m aptutils", description=__doc__,
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
    book.add_argument("--out", help="folder for the executed chapters and their execution record "
                                    "(default: the profile's part of the book, book/ or book/gpu/)")
    commands.choices["pretrain"].add_argument(
        "--publish", action="store_true",
        help="copy the trained models into book/models with their cards (the book's defaults)")
    sweep = commands.add_parser("sweep", help="execute one chapter for every combination of "
                                              "knob values and gather its verdicts into one table")
    sweep.add_argument("chapter", help="the chapter: its number (03), stem (03_symmetry_breaking) "
                                       "or notebook path")
    sweep.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILE_NAMES)
    sweep.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                       metavar=("NAME", "VALUES"),
                       help="a knob and its values, comma-separated (';' for a list-valued knob "
                            "such as ws_list: '1000,4000;4000,16000'); repeatable, one -p per knob")
    sweep.add_argument("--out", help="folder of the executed points, sweep.csv and sweep.html "
                                     "(default: sweeps/<chapter>)")
    commands.add_parser("render", help="render book/ into _build/html (warnings are errors)")
    commands.add_parser("sync-parameters", help="rewrite the chapters' parameters cells")
    part = commands.add_parser("import-part", help="bring executed chapters (e.g. the GPU run's) "
                                                   "into their part of the book and rewrite its pages")
    part.add_argument("part", choices=["gpu"])
    part.add_argument("source", help="folder holding NN_name.ipynb and execution.json")
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
    from .notebooks import add_rerun_cell, chapter_sources, execute_chapter
    from .parts import CPU, GPU, PARTS, record_execution, write_pages

    chosen = chosen_parameters(args)
    known = {s.name[:2] for s in chapter_sources()}
    unknown = sorted(set(args.chapters or ()) - known)
    if unknown:
        raise ParameterError(f"--chapters {' '.join(unknown)}: no such chapter; the chapters are "
                             f"{' '.join(sorted(known))}")
    sources = [s for s in chapter_sources() if not args.chapters or s.name[:2] in args.chapters]
    part_folder = GPU.folder if chosen["profile"] == "gpu" else CPU.folder
    out = Path(args.out).resolve() if args.out else part_folder
    out.mkdir(parents=True, exist_ok=True)
    device = resolved_device(resolve(chosen).device)
    for source in sources:
        started = time.time()
        print(f"Executing {source.name} ({chosen})", flush=True)
        execute_chapter(source, out / source.name, chosen)
        add_rerun_cell(out / source.name, source, chosen)
        seconds = time.time() - started
        record_execution(source.stem, chosen["profile"], seconds, device_name(device),
                         out / "execution.json")
        print(f"{source.name}: {seconds:.0f} s", flush=True)
    if out not in [part.folder for part in PARTS]:
        return 0  # executed elsewhere (e.g. on a GPU machine): `import-part` brings it in
    write_pages()
    return 0 if args.no_render else render(args)


def device_name(device: str) -> str:
    """The device as the execution record names it: the GPU's name on CUDA, else `cpu`."""
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else device


def import_part_command(args) -> int:
    from .parts import PARTS, import_part, part_problems, write_pages

    part = {p.name: p for p in PARTS}[args.part]
    names = import_part(part, Path(args.source))
    problems = part_problems(part)
    print(f"{part.caption}: imported {', '.join(names)}")
    for problem in problems:
        print(f"  problem: {problem}")
    write_pages()
    return 1 if problems else 0


def render(args) -> int:
    from .notebooks import render_book

    return render_book(capture=False).returncode


def pretrain(args) -> int:
    from .data.pretraining import pretraining_data
    from .training import published
    from .training.equal_steps import SERIES_NAMES, has_equal_steps, series_recipes
    from .training.pretrain import SeriesRecipe, model_params, pretrained_model

    settings = resolve(chosen_parameters(args))
    recipe = settings.recipe(SeriesRecipe)
    data = pretraining_data(recipe.data)
    command = "python -m aptutils pretrain " + " ".join(
        [f"--profile {settings.profile}"] + [f"-p {n} {v}" for n, v in args.parameter] + ["--publish"])
    for series in ("epochs", "steps") if has_equal_steps(recipe) else ("epochs",):
        for ws, each in series_recipes(recipe, series).items():
            model = pretrained_model(each, ws, data)
            print(f"W_S={ws} ({SERIES_NAMES[series]}, {model.card['steps']:,} steps): {model.folder}")
            if not args.publish or model.folder.parent == published.PUBLISHED_DIR:
                continue
            name = f"{settings.profile}-ws{ws}" + (f"-steps{model.card['steps']}" if series == "steps"
                                                    and ws != max(settings.ws_list) else "")
            target = published.publish(model.folder, model_params(each.training, data, ws), name,
                                       command,
                                       extra={"tokenizer_key": data.tokenizer_key},
                                       root=published.PUBLISHED_DIR)
            print(f"W_S={ws}: published to {target}")
    return 0


def sync_parameters(args) -> int:
    from .notebooks import chapter_sources
    from .notebooks import sync_parameters as sync

    for source in chapter_sources():
        print(f"{source.name}: {'rewritten' if sync(source) else 'in sync'}")
    return 0


def sweep_command(args) -> int:
    from .core.params import KNOB_BY_NAME, KNOBS
    from .core.store import REPO_ROOT
    from .notebooks import CHAPTER_GROUPS, chapter_sources, execute_chapter
    from .sweeps import run_sweep, sweep_grid

    sources = chapter_sources()
    wanted = Path(args.chapter).stem
    matches = [s for s in sources if s.stem == wanted or s.name[:2] == wanted.zfill(2)]
    if len(matches) != 1:
        raise ParameterError(f"sweep {args.chapter}: no such chapter; the chapters are "
                             f"{', '.join(s.stem for s in sources)}")
    if not args.parameter:
        raise ParameterError("sweep: nothing to sweep; give at least one -p NAME V1,V2")
    source = matches[0]
    own = [k.name for k in KNOBS if set(k.groups) & set(CHAPTER_GROUPS[source.stem])]
    foreign = [name for name, _ in args.parameter if name in KNOB_BY_NAME and name not in own]
    if foreign:
        raise ParameterError(f"sweep {source.stem}: {', '.join(foreign)} is not a knob of this "
                             f"chapter; its knobs are {', '.join(own)}")
    chosen = {"profile": args.profile}
    points = sweep_grid(chosen, args.parameter, parse_value)
    out = Path(args.out).resolve() if args.out else REPO_ROOT / "sweeps" / source.stem
    print(f"Sweeping {source.name} over {len(points)} points into {out}", flush=True)
    table = run_sweep(source, chosen, points, out, execute_chapter)
    print(f"{len(table)} verdicts: {out / 'sweep.csv'}, {out / 'sweep.html'}", flush=True)
    return 0


COMMANDS = {"book": build_book, "render": render, "pretrain": pretrain,
            "sync-parameters": sync_parameters, "import-part": import_part_command,
            "sweep": sweep_command}

if __name__ == "__main__":
    sys.exit(main())
