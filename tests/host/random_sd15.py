"""Write a full-size SD1.5-architecture checkpoint with RANDOM weights, for the host test tier.

    <trainer python> tests/host/random_sd15.py OUT.safetensors --ldm-yaml <A1111>/configs/v1-inference.yaml

Runs in the trainer's Python (diffusers + transformers). Beside OUT it writes what a loader
needs offline, as the demo model's installer does for cartoon128:
  <stem>.text_encoder/  CLIP-L config.json + tokenizer files (save_pretrained layout, no weights:
                        the weights are in the checkpoint)
  <stem>.yaml           A1111's v1-inference.yaml with cond_stage_config.params.version = that folder
                        (so A1111 needs no Hugging Face cache)
  <stem>.config/        the diffusers config folder our own loader reads
Idempotent: an existing complete set is left alone (--force rewrites it). About 2 GB in fp16.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

MIN_BYTES = 1_500_000_000  # a full-size SD1.5 in fp16 is ~2.1 GB; anything smaller is not one


def text_encoder_dir(model: Path) -> Path:
    return model.with_name(f"{model.stem}.text_encoder")


def ldm_yaml(template: str, te_dir: Path) -> str:
    """A1111's v1-inference.yaml with `version: <te_dir>` under cond_stage_config (plain text edit:
    the template's last block is `cond_stage_config:` / `target: ...FrozenCLIPEmbedder`)."""
    lines = template.rstrip("\n").split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "cond_stage_config:":
            indent = line[: len(line) - len(line.lstrip())]
            target = lines[i + 1] if i + 1 < len(lines) else ""
            if "FrozenCLIPEmbedder" not in target:
                raise ValueError(f"unexpected cond_stage_config in the template: {target!r}")
            if any("version:" in rest for rest in lines[i + 1:]):
                raise ValueError("the template already sets a version under cond_stage_config")
            inner = indent + "  "
            head = "# A1111's v1-inference.yaml; CLIP-L from a local folder (written by tests/host/random_sd15.py)"
            return "\n".join([head] + lines[: i + 2] + [f"{inner}params:", f"{inner}  version: {json.dumps(str(te_dir))}"]
                             + lines[i + 2:]) + "\n"
    raise ValueError("no cond_stage_config in the template")


def complete(model: Path) -> bool:
    te = text_encoder_dir(model)
    return (model.is_file() and model.stat().st_size > MIN_BYTES and (te / "config.json").is_file()
            and (te / "vocab.json").is_file() and model.with_suffix(".yaml").is_file())


def write_loader_files(model: Path, yaml_template: Path) -> None:
    from lib_lora_trainer import atomic
    from lib_lora_trainer.models import configs
    from lib_lora_trainer.models.detect import sibling_config_dir
    from lib_lora_trainer.tokenizer.clip_bpe import write_pretrained_tokenizer

    te = text_encoder_dir(model)
    with atomic.atomic_dir(te) as tmp:
        (tmp / "config.json").write_text(json.dumps(configs.CLIP_L, indent=2), encoding="utf-8")
        write_pretrained_tokenizer(tmp, "sd1")
    with atomic.atomic_dir(sibling_config_dir(model)) as tmp:
        configs.write_config_folder("sd1", tmp)
    atomic.write_text(model.with_suffix(".yaml"), ldm_yaml(yaml_template.read_text(encoding="utf-8"), te))


def write_random_sd15(model: Path, seed: int) -> dict:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lib_lora_trainer.models import configs
    from lib_lora_trainer.models.single_file import save_single_file

    torch.manual_seed(seed)
    with torch.no_grad():
        unet = UNet2DConditionModel.from_config(configs.SD1_UNET)
        vae = AutoencoderKL.from_config(configs.SD1_VAE)
        te = CLIPTextModel(CLIPTextConfig.from_dict(configs.CLIP_L))
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in (("unet", unet), ("vae", vae), ("text_encoder", te))}
    save_single_file(unet, vae, te, model, dtype=torch.float16,
                     metadata={"modelspec.architecture": "stable-diffusion-v1", "modelspec.title": model.stem,
                               "lora_trainer.random_seed": str(seed)})
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the checkpoint to write (.safetensors)")
    p.add_argument("--ldm-yaml", type=Path, required=True, help="A1111's configs/v1-inference.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rewrite even when a complete set is there")
    a = p.parse_args(argv)
    model = a.out.resolve()
    if complete(model) and not a.force:
        print(f"random SD1.5: {model} is there ({model.stat().st_size / 1e9:.2f} GB); loader files refreshed")
        write_loader_files(model, a.ldm_yaml)
        return 0
    model.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    counts = write_random_sd15(model, a.seed)
    write_loader_files(model, a.ldm_yaml)
    print(f"random SD1.5: wrote {model} ({model.stat().st_size / 1e9:.2f} GB, parameters {counts}) "
          f"+ {model.with_suffix('.yaml').name} + {text_encoder_dir(model).name}/ in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
