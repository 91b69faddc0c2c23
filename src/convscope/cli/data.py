"""``convscope data ...``: the registered data sets (``list``) and what a data folder holds (``check``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convscope.errors import ConvscopeError

data_app = typer.Typer(no_args_is_help=True, help="Registered data sets, and checks of a data folder.")


def table_rows(rows: list[tuple[str, ...]], header: tuple[str, ...], *, width: int | None = None) -> list[str]:
    """Left-aligned columns as wide as their longest cell plus two spaces; the last column is wrapped to ``width``
    (default: the terminal's, 100 when it is not a terminal), continued under itself."""
    import shutil
    import textwrap

    width = width or shutil.get_terminal_size((100, 24)).columns
    widths = [max(len(r[i]) for r in [header, *rows]) + 2 for i in range(len(header) - 1)]
    indent = sum(widths)
    below = width - indent < 30  # too narrow: the last column goes under its row
    lines = []
    for r in [header, *rows]:
        first = "".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True))
        if below:
            lines.append(first.rstrip())
            lines += ["    " + part for part in textwrap.wrap(r[-1], max(width - 5, 20))]
            continue
        wrapped = textwrap.wrap(r[-1], width - indent - 1) or [""]
        lines.append(first + wrapped[0])
        lines += [" " * indent + more for more in wrapped[1:]]
    return lines


@data_app.command("list")
def data_list() -> None:
    """List the registered data sets."""
    from convscope.datasets import list_datasets

    rows = []
    for d in list_datasets():
        test = "own" if d.has_test_split else "held out"
        generated = d.source.startswith("generated")
        source = "download" if d.downloadable else "generated" if generated else "local folder"
        rows.append((d.name, ",".join(d.tasks), test, source, d.description))
    for line in table_rows(rows, ("name", "tasks", "test split", "source", "description")):
        typer.echo(line)


@data_app.command("check")
def data_check(
    target: Annotated[str, typer.Argument(help="A data folder (images/ + masks/, class subfolders, MNIST files) "
                                         "or a registered data set name (with --data).")],
    task: Annotated[str | None, typer.Option("--task", help="Check for this task: classification, semantic, "
                                             "stardist or flows (binary masks are refused for instances).")
                    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Data folder holding the registered data set.")
                    ] = None,
    patch_size: Annotated[int, typer.Option("--patch-size", help="Training patch side to compare sizes with.")
                          ] = 256,
    relabel: Annotated[Path | None, typer.Option("--relabel", help="Write a copy whose masks are relabelled by "
                                                 "connected components to this NEW folder (inputs untouched).")
                       ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the tables as Markdown.")] = False,
) -> None:
    """Check a data folder before training: pairs, masks, images, leakage across splits, balance, object sizes;
    one table per folder with a verdict and the fix for each finding. Exit code 2 when the task cannot work."""
    from convscope.datasets.check import check_data, relabel_folder

    if relabel is not None:
        n = relabel_folder(target, relabel, data_dir=data)
        typer.echo(f"{n} relabelled masks written to {relabel / 'masks'} (images copied to {relabel / 'images'}); "
                   f"check them with `convscope data check {relabel} --task stardist`")
        return
    result = check_data(target, task=task, data_dir=data, patch_size=patch_size)
    typer.echo(result.markdown() if markdown else result.table())
    if result.errors:
        raise ConvscopeError(result.verdict)
