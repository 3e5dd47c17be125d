"""`make demo`: load the `tiny` InstructBLIP through the public API and answer an instruction about a bundled image.

The tiny model has random weights (its config says `random_init: true`), so its words are noise; the demo shows the
whole inference path — config, processors, ViT, Q-Former, LLM, generation and candidate ranking — end to end.
It will train the tiny model on the synthetic world once the training issue lands.
"""

from __future__ import annotations

import argparse
import time

import torch

from lavis_ib import load_model_and_preprocess, model_zoo
from lavis_ib.common.media import open_image
from lavis_ib.common.paths import assets_root

DEMO_IMAGE = assets_root / "images" / "demo.png"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="blip2_vicuna_instruct")
    parser.add_argument("--model-type", default="tiny")
    parser.add_argument("--image", default=str(DEMO_IMAGE))
    parser.add_argument("--prompt", default="What shape is next to the stop sign?")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    print(model_zoo, "\n")
    start = time.perf_counter()
    model, vis_processors, _ = load_model_and_preprocess(args.arch, args.model_type, is_eval=True)
    image = vis_processors["eval"](open_image(args.image)).unsqueeze(0)
    answer = model.generate({"image": image, "prompt": args.prompt}, max_length=12)[0]
    choices = ["a red circle", "a blue square", "a green triangle"]
    ranks = model.predict_class({"image": image, "prompt": args.prompt}, choices)[0].tolist()
    print(f"model     : {args.arch}/{args.model_type} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"image     : {args.image} -> tensor {tuple(image.shape)}")
    print(f"prompt    : {args.prompt}")
    print(f"generated : {answer!r}")
    print(f"ranking   : {[choices[i] for i in ranks]}")
    print(f"time      : {time.perf_counter() - start:.1f} s")
    if model.cfg.random_init:
        print("note      : random weights (tiny model type) - the text is noise until the model is trained")


if __name__ == "__main__":
    main()
