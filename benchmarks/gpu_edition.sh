#!/usr/bin/env bash
# The GPU edition: all seven chapters on the `gpu` profile (BERT-6 at width 768, the paper's
# tokenizer) executed with papermill in one command of at most nine minutes on one GPU.
#
#   benchmarks/gpu_edition.sh prepare          here, with PyPI: the wheels the GPU machine lacks and
#                                              the data subsets, into .gpu-bundle/ (git-ignored)
#   benchmarks/gpu_edition.sh run OUT [ARGS]   there: executes the chapters into OUT (at most 8
#                                              files: 7 chapters + extras.tar.gz, the execution
#                                              record and the chapters' exports); ARGS go to
#                                              `python -m aptutils book` (e.g. --chapters 01 02)
#   python -m aptutils import-part gpu OUT     here: the returned chapters into book/gpu/
#
# On the device tool: run `bash benchmarks/gpu_edition.sh run $OUT` with carry [".gpu-bundle"].
# On CPU, end to end at a tiny size: benchmarks/gpu_edition.sh run /tmp/gpu-out -p profile smoke
# (the bundle is optional there: without it the local environment and $APTBOOK_DATA are used).
#
# Data travel as subsets (the GPU machine reaches no network and ../shared does not travel): the
# Wikipedia sample, the FewRel subset and the tokenizer whole; DBpedia-14 cut to its first 400
# train / 150 test abstracts per class, CIFAR-10 to GPU_EDITION_CIFAR_TRAIN / _TEST images
# (default 4,000 / 1,000), so that the repository, wheels and data stay inside the 64 MiB that
# one device call carries.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=.gpu-bundle
# Installed there from wheels (missing from its image, or another version there; jedi, which
# IPython uses only for completion, stays behind to save 5 MB); the versions
# are this checkout's environment's, so the GPU run uses what the tests here used.
WHEELS="transformers datasets dill multiprocess papermill entrypoints tenacity nbclient nbformat
  fastjsonschema jsonschema jsonschema-specifications referencing rpds-py jupyter-client
  jupyter-core platformdirs traitlets ipykernel comm ipython ipython-pygments-lexers
  matplotlib-inline nest-asyncio2 pyzmq tornado pexpect ptyprocess
  prompt-toolkit wcwidth stack-data asttokens executing pure-eval regex"

python_here() {
  if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi
}

prepare() {
  : "${APTBOOK_DATA:?set APTBOOK_DATA to the data mirror (e.g. ../shared/data)}"
  local py; py=$(python_here)
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/wheels" "$BUNDLE/data"
  local pins; pins=$("$py" - $WHEELS <<'EOF'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
EOF
)
  # shellcheck disable=SC2086
  "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$BUNDLE/wheels" $pins
  # transformers' wheel (13 MB) without the modelling code of the ~550 models the book never
  # builds (their configuration and tokenizer files stay: the Auto classes import them): 4.8 MB
  "$py" - "$BUNDLE"/wheels/transformers-*.whl <<'EOF'
import re
import sys
import zipfile
from pathlib import Path

wheel = Path(sys.argv[1])
KEEP = {"auto", "bert", "encoder_decoder", "timm_backbone"}
DROP = re.compile(r"transformers/models/([^/]+)/(modeling|modular|image_processing|video_processing"
                  r"|feature_extraction|processing|convert)_[^/]*$")
stripped = wheel.with_suffix(".stripped")
with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED) as target:
    for item in source.infolist():
        dropped = DROP.match(item.filename)
        if not dropped or dropped.group(1) in KEEP:
            target.writestr(item, source.read(item))
print(f"{wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB -> {stripped.stat().st_size / 2**20:.1f} MiB")
stripped.replace(wheel)
EOF
  for name in wikipedia few_rel bert-base-uncased; do
    cp -r "$APTBOOK_DATA/$name" "$BUNDLE/data/$name"
  done
  "$py" - "$APTBOOK_DATA" "$BUNDLE/data" "${GPU_EDITION_CIFAR_TRAIN:-4000}" \
      "${GPU_EDITION_CIFAR_TEST:-1000}" <<'EOF'
import sys
from pathlib import Path

import pyarrow.parquet as pq

source, target = Path(sys.argv[1]), Path(sys.argv[2])
cifar_train, cifar_test = int(sys.argv[3]), int(sys.argv[4])
# (dataset, split): the first N rows, or the first N rows of each label
CUTS = {("cifar10", "train"): ("rows", cifar_train), ("cifar10", "test"): ("rows", cifar_test),
        ("dbpedia_14", "train"): ("per label", 400), ("dbpedia_14", "test"): ("per label", 150)}
for (name, split), (how, size) in CUTS.items():
    (path,) = (source / name).glob(f"{split}-*.parquet")
    table = pq.read_table(path)
    if how == "rows":
        kept = table.slice(0, size)
    else:
        labels = table.column("label").to_numpy()
        rows = sorted(i for label in set(labels) for i in (labels == label).nonzero()[0][:size])
        kept = table.take(rows)
    (target / name).mkdir(exist_ok=True)
    pq.write_table(kept, target / name / path.name)
    print(f"{name} {split}: {kept.num_rows:,} of {table.num_rows:,} rows ({how}: {size:,})")
EOF
  local tracked; tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  local bundle; bundle=$(du -sb "$BUNDLE" | cut -f1)
  echo "bundle $((bundle / 1048576)) MiB + tracked files $((tracked / 1048576)) MiB" \
       "= $(((bundle + tracked) / 1048576)) MiB of the 64 MiB one device call carries"
  if [ $((bundle + tracked)) -gt $((62 * 1048576)) ]; then
    echo "too large: lower GPU_EDITION_CIFAR_TRAIN" >&2; exit 1
  fi
}

run() {
  local out=${1:?usage: benchmarks/gpu_edition.sh run OUT [book arguments]}; shift
  local py; py=$(python_here)
  if ! "$py" -c "import papermill, datasets" 2>/dev/null; then  # the GPU machine: bring them
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/aptbook-site "$BUNDLE"/wheels/*.whl
    export PYTHONPATH="/tmp/aptbook-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if [ -d "$BUNDLE/data" ]; then export APTBOOK_DATA="$PWD/$BUNDLE/data"; fi
  export APTBOOK_STORE="${APTBOOK_STORE:-$(mktemp -d)}"
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
  mkdir -p "$out"
  "$py" -c "import torch; print('torch', torch.__version__, 'on',
    torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
  # Stop in time for the files to come back: what was executed by then is kept (papermill writes
  # each chapter as it goes, and every finished chapter is in the execution record).
  export APTBOOK_EXPORTS="$out/exports"
  local status=0
  timeout --signal=INT "${GPU_EDITION_SECONDS:-510}" \
    "$py" -m aptutils book --profile gpu --out "$out" --no-render "$@" || status=$?
  # at most 8 files come back: the 7 chapters, and one archive of the record and the exports
  if [ -f "$out/execution.json" ]; then
    tar -czf "$out/extras.tar.gz" -C "$out" execution.json $(cd "$out" && ls -d exports 2>/dev/null)
    rm -rf "$out/execution.json" "$out/exports"
  fi
  return "$status"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
