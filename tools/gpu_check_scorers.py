"""The scorer models of `make gpu-check`, as folders `landscape evaluate` loads: the real ones
when weights/ holds them, else the real-size architectures with random weights (their time and
memory are the real ones; their scores mean nothing).

    python tools/gpu_check_scorers.py --out DIR [--tiny] [--weights weights]

Writes DIR/segformer (SegFormer-B5, 29 classes, 512x384 input), DIR/clip (CLIP ViT-L/14 vision
tower with projection) and DIR/aesthetic-head.safetensors (the LAION MLP's shapes), and prints
one json line: {"segformer": path, "segformer_class_map": ..., "clip": path,
"aesthetic_head": path, "random": [...names built with random weights...]}.
--tiny: small sizes of the same architectures (the CPU self-test). PyTorch side only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# SegFormer-B5 (nvidia/mit-b5) and CLIP ViT-L/14 (openai/clip-vit-large-patch14) sizes.
SEGFORMER_B5 = dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 6, 40, 3],
                    num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=768)
SEGFORMER_TINY = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                      num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16)
CLIP_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                num_attention_heads=16, patch_size=14, image_size=224, projection_dim=768)
CLIP_TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, patch_size=8, image_size=32, projection_dim=16)
HEAD_WIDTHS = (1024, 128, 64, 16)  # the LAION aesthetic MLP after the CLIP embedding
HEAD_TINY = (16, 8, 8, 4)


def _segformer(out: Path, sizes: dict) -> None:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    from pipeline.core.classes import CLASS_NAMES

    labels = dict(enumerate(CLASS_NAMES))
    cfg = SegformerConfig(num_labels=len(labels), id2label=labels,
                          label2id={n: i for i, n in labels.items()}, **sizes)
    SegformerForSemanticSegmentation(cfg).save_pretrained(out)
    SegformerImageProcessor(size={"height": 384, "width": 512}, do_reduce_labels=False).save_pretrained(out)


def _clip(out: Path, sizes: dict) -> None:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    CLIPVisionModelWithProjection(CLIPVisionConfig(**sizes)).save_pretrained(out)
    side = sizes["image_size"]
    CLIPImageProcessor(size={"shortest_edge": side},
                       crop_size={"height": side, "width": side}).save_pretrained(out)


def _head(path: Path, dim: int, widths: tuple[int, ...]) -> None:
    import torch
    from safetensors.torch import save_file

    chain = (dim, *widths, 1)
    tensors = {}
    for layer, (n_in, n_out) in zip((0, 2, 4, 6, 7), zip(chain[:-1], chain[1:])):
        tensors[f"layers.{layer}.weight"] = torch.randn(n_out, n_in) / n_in ** 0.5
        tensors[f"layers.{layer}.bias"] = torch.zeros(n_out)
    save_file(tensors, str(path))


def make_scorers(out: Path, weights: Path, tiny: bool) -> dict:
    """Build what is missing under `out`; the paths `landscape evaluate` should use."""
    import torch

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"random": []}
    real_seg, real_clip = weights / "segformer-ade20k", weights / "clip-vit-large-patch14"
    real_head = weights / "aesthetic-head.safetensors"
    if not tiny and (real_seg / "config.json").is_file():
        result.update(segformer=str(real_seg), segformer_class_map="ade20k-names")
    else:
        _segformer(out / "segformer", SEGFORMER_TINY if tiny else SEGFORMER_B5)
        result.update(segformer=str(out / "segformer"), segformer_class_map="")
        result["random"].append("SegFormer-B5" if not tiny else "SegFormer (tiny)")
    if not tiny and (real_clip / "config.json").is_file() and real_head.is_file():
        result.update(clip=str(real_clip), aesthetic_head=str(real_head))
        return result
    sizes = CLIP_TINY if tiny else CLIP_L14
    _clip(out / "clip", sizes)
    _head(out / "aesthetic-head.safetensors", sizes["projection_dim"], HEAD_TINY if tiny else HEAD_WIDTHS)
    result.update(clip=str(out / "clip"), aesthetic_head=str(out / "aesthetic-head.safetensors"))
    result["random"].append("CLIP ViT-L/14 + aesthetic head" if not tiny else "CLIP (tiny) + head")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--weights", default=Path("weights"), type=Path)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(make_scorers(args.out, args.weights, args.tiny)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
