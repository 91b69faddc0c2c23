"""``convscope export``: a run as a bioimage.io model package, an ONNX graph or a TorchScript archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    run: Annotated[Path, typer.Argument(help="A run directory, a built-in model or a convscope package.")],
    out: Annotated[Path, typer.Option("--out", help="model.zip (bioimageio), model.onnx or model.pt (torchscript).")],
    format_: Annotated[str, typer.Option("--format", help="bioimageio, onnx or torchscript.")] = "bioimageio",
    name: Annotated[str | None, typer.Option(help="bioimageio: the model's name (default: the run's).")] = None,
    description: Annotated[str | None, typer.Option(help="bioimageio: one paragraph on the model.")] = None,
    author: Annotated[list[str] | None, typer.Option(help="bioimageio: an author's name (repeat for several).")
                      ] = None,
    license_: Annotated[str | None, typer.Option("--license", help="bioimageio: SPDX licence id, e.g. CC-BY-4.0."
                                                 )] = None,
    cite: Annotated[list[str] | None, typer.Option(help="bioimageio: 'TEXT|DOI' or 'TEXT|URL' (repeat).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="bioimageio: a tag (repeat).")] = None,
    sample: Annotated[Path | None, typer.Option(help="bioimageio: one of your images, the package's test input "
                                                "and cover (default: a generated nuclei image).")] = None,
    test: Annotated[bool, typer.Option("--test/--no-test", help="bioimageio: run bioimageio.core's test_model on "
                                       "the package before writing it.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
) -> None:
    """Export RUN for other tools: a bioimage.io model package (Fiji/deepImageJ, QuPath, ilastik, napari), ONNX or
    TorchScript; authors, licence and citations come from the recipe's metadata: section, the flags override."""
    from tqdm import tqdm

    from convscope import export_run
    from convscope.export import metadata_with
    from convscope.runs import load_run

    trained = load_run(run, device="cpu")
    metadata = metadata_with(trained.config.metadata, name=name, description=description, authors=author or (),
                             license=license_, cite=cite or (), tags=tag or ())
    result = export_run(trained, out, format=format_, metadata=metadata, sample=sample, test=test,
                        overwrite=overwrite, log=tqdm.write)
    for warning in result.warnings:
        tqdm.write(f"warning: {warning}")
    tqdm.write(f"{result.format} export written to {result.path} (largest difference from torch eager: "
         f"{result.max_abs_diff:.2g})")
