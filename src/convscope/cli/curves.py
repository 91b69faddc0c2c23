"""``convscope learning-curve``: would more labelled images help?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def learning_curve_command(
    recipe: Annotated[Path, typer.Argument(help="A YAML recipe (see examples/).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the runs, curve.csv, curve.json and curve.png.")],
    fractions: Annotated[str, typer.Option("--fractions", help="Shares of the training split, comma separated.")
                         ] = "0.1,0.25,0.5,1",
    budget: Annotated[str, typer.Option("--budget", help="steps: the same optimisation steps for every point "
                                        "(classification: data.images_per_epoch = the full split's size); epochs: "
                                        "one pass per epoch.")
                      ] = "steps",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: --set train.epochs=2")
                    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Data folder (else $CONVSCOPE_DATA, else the cache).")
                    ] = None,
) -> None:
    """Train RECIPE on growing fractions of its training images (same budget, same validation and test images) and
    plot the test metric against the number of training images."""
    from tqdm import tqdm

    from convscope.config import load_recipe
    from convscope.evaluation.learning_curve import learning_curve, parse_fractions

    config = load_recipe(recipe, set_ or [])
    points = learning_curve(config, parse_fractions(fractions), out, data_dir=data, budget=budget,  # type: ignore[arg-type]
                            log=tqdm.write)
    typer.echo(f"{'n_train':>8}{'epochs':>8}{'steps':>8}{'test':>9}{'val':>9}{'seconds':>9}")
    for p in points:
        typer.echo(f"{p.n_train:>8}{p.epochs:>8}{p.steps:>8}{p.test:>9.4f}{p.val:>9.4f}{p.seconds:>9.1f}")
    typer.echo(f"learning curve written to {out} (curve.csv, curve.json, curve.png)")
