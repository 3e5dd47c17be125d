"""`python run_demo.py`: an interactive page (Gradio) on an InstructBLIP model, served on this machine.

With no options after `make demo` it serves the model that run trained; see `served` for how the model is chosen,
`page` for what the page offers, `checks` for the input it refuses or repairs, `answers` for streaming and ranking.
Gradio is an optional dependency: `pip install -e .[demo]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import typing
from pathlib import Path

from lavis_ib.cli import USAGE_ERROR, USER_ERRORS, user_message
from lavis_ib.common.run_schema import Precision


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--cfg-path", help="a project YAML whose model section to serve (e.g. "
                                           "projects/instructblip/demo_model.yaml)")
    parser.add_argument("--arch", help="registered architecture, e.g. blip2_vicuna_instruct (with --model-type)")
    parser.add_argument("--model-type", help="model type of --arch, e.g. vicuna7b or tiny")
    parser.add_argument("--checkpoint", help="weights to load: a LAVIS .pth, our .safetensors or an HF directory")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--precision", choices=typing.get_args(Precision),
                        help="dtype of the frozen parts (default: the model's own, fp32 on CPU)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                            "only; 0.0.0.0 serves the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    args = parser.parse_args(argv)
    if args.cfg_path and (args.arch or args.model_type):
        parser.error("give either --cfg-path or --arch/--model-type, not both")
    if bool(args.arch) != bool(args.model_type):
        parser.error("--arch and --model-type go together")
    if args.checkpoint and not (args.cfg_path or args.arch):
        parser.error("--checkpoint needs the model it belongs to: --cfg-path, or --arch and --model-type")
    return args


def serve(args: argparse.Namespace):
    """Build the page and start serving it in the background; `(page, slot, gallery)`, with the gallery not yet
    drawn (`gallery.draw()`) and the model not yet loaded (`slot.load()`): both need torch, which takes longer to
    import than the page. Raises one of `USER_ERRORS` for a bad request (gradio missing, a config not there)."""
    from lavis_ib.common.extras import require

    require("gradio", "demo", "python run_demo.py")
    from lavis_ib.app.examples import Gallery
    from lavis_ib.app.served import ModelSlot

    slot = ModelSlot(args)  # the request's paths are checked before gradio is imported: a bad one fails fast
    from lavis_ib.app.page import CSS, build_page

    gallery = Gallery(Path(tempfile.mkdtemp(prefix="lavis_ib_demo_")))
    page = build_page(slot, gallery)
    page.launch(server_name=args.host, server_port=args.port, prevent_thread_lock=True, ssr_mode=False, quiet=True,
                allowed_paths=[str(gallery.folder)], footer_links=[], show_error=True, css=CSS)
    return page, slot, gallery


def main(argv: list[str] | None = None) -> None:
    """Serve the page until interrupted; a bad request is one line on stderr and exit status 2."""
    start = time.perf_counter()
    args = parse_args(argv)
    page = None
    try:
        page, slot, gallery = serve(args)
        url = f"http://{args.host}:{args.port}/"
        print(f"page at {url} (up in {time.perf_counter() - start:.1f} s), loading the model...", flush=True)
        gallery.draw()
        served = slot.load()
    except USER_ERRORS as error:  # what train.py and evaluate.py report as one line, too
        if page is not None:
            page.close()
        print(f"run_demo: error: {user_message(error)}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
    if served.banner:
        print(served.banner)
    print(f"serving {served.identity}\n  at {url} (model ready in {time.perf_counter() - start:.1f} s; Ctrl+C stops "
          f"it)", flush=True)
    try:
        page.block_thread()
    except KeyboardInterrupt:
        page.close()
