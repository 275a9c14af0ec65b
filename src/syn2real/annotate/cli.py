"""`syn2real annotate`: label a request folder's requests by hand in a web page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

annotate_app = typer.Typer(help="Answer labelling requests by hand in a web page.", no_args_is_help=True)


@annotate_app.command()
def serve(
    request_dir: Annotated[Path, typer.Argument(help="Request folder written by `syn2real select` "
                                                     "(labels.sqlite, meta.json, predictions/).")],
    host: Annotated[str, typer.Option(help="Address to bind. Anything but loopback (127.0.0.1, localhost, ::1) "
                                           "makes the server print a token that every page and API call must "
                                           "carry.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    lease_seconds: Annotated[float, typer.Option(min=10, help="An image handed to an annotator stays theirs this "
                                                              "long after their last activity; then another "
                                                              "annotator may get it.")] = 600.0,
):
    """Serve the annotation page and its JSON API until Ctrl+C.

    Examples:

      syn2real annotate serve REQUEST_DIR                                # http://127.0.0.1:8000/

      syn2real annotate serve REQUEST_DIR --host 0.0.0.0 --port 8080   # for other machines: prints a token

    Answers go straight into REQUEST_DIR/labels.sqlite; the page's Export button writes REQUEST_DIR/export/.
    """
    from syn2real.annotate.server import serve as run_server

    run_server(request_dir, host=host, port=port, lease_seconds=lease_seconds)
