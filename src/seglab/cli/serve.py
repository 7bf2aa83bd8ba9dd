"""``seglab serve``: the workbench, a browser app for labelling a project folder (see docs/workbench.md)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ParameterError, SeglabError
from .app import app, check_option, console, parse_sets

SAM_KEYS = ("checkpoint", "model")


@app.command("serve")
def serve_cmd(
    folder: Path = typer.Argument(..., help="Project folder (images/ and the annotations beside them)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; any other than the loopback "
                             "needs a token."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    token: Optional[str] = typer.Option(None, "--token", help="Access token (default: none on the loopback, "
                                        "a random one printed at start on any other address)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="SAM options: checkpoint=PATH (default: "
                                             "mobile_sam.pt in $SEGLAB_WEIGHTS), model=mobile_sam|sam_vit_b|..."),
):
    """Start the workbench on FOLDER: browse, annotate with SAM clicks, brush, polygon and the classical
    methods, train, pre-label, review and export; open the printed address in a browser. Ctrl-C stops it."""
    from ..workbench.launch import is_loopback, open_socket, run_server

    check_option("--port", port, 0, 65535)
    if not folder.is_dir():
        raise SeglabError(f"{folder}: no such project folder")
    options = parse_sets(sets)
    unknown = set(options) - set(SAM_KEYS)
    if unknown:
        raise ParameterError(f"--set {sorted(unknown)[0]}: unknown option (known: {', '.join(SAM_KEYS)})")
    if token is not None and len(token) < 8:
        raise ParameterError("--token must have at least 8 characters")
    loopback = is_loopback(host)
    if not loopback and token is None:
        import secrets

        token = secrets.token_urlsafe(18)
    sock = open_socket(host, port)  # a port in use is a one-line error before anything loads
    from ..workbench.server import create_app

    application = create_app(folder, token=token, loopback=loopback, sam_checkpoint=options.get("checkpoint", "default"),
                             sam_model=options.get("model", "mobile_sam"))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    console.print(f"seglab workbench on {folder}: open {url}  (Ctrl-C stops it)", markup=False, highlight=False,
                  soft_wrap=True)
    run_server(application, sock)
