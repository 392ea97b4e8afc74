"""Sample images during training from sd-scripts' prompt file (`--n --w --h --d --l --s` lines)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import torch

from . import logs


def sample_images(t, epoch: int, by_epoch: bool = False) -> list:
    from lib_lora_trainer.generation.pipeline import build_pipeline, generate
    from lib_lora_trainer.generation.prompt_lines import load_prompt_file

    a = t.args
    prompts = load_prompt_file(a.sample_prompts)
    logs.say(f"\ngenerating sample images at step / サンプル画像生成 ステップ: {t.global_step}")
    components = SimpleNamespace(unet=t.unet, vae=t.vae, text_encoders=t.text_encoders, tokenizers=t.tokenizers,
                                 noise_scheduler=t.noise_scheduler, model_type=t.model_type,
                                 v_prediction=t.v_prediction)
    vae_device = next(t.vae.parameters()).device
    t.vae.to(t.device)  # it may have been moved off the GPU after latent caching
    modes = [(m, m.training) for m in (t.unet, t.vae, *t.text_encoders)]
    for m, _ in modes:
        m.eval()
    folder = t.output_dir / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = f"e{epoch:06d}" if by_epoch else f"{t.global_step:06d}"
    rng_state = torch.get_rng_state()  # sampling must not change the training noise stream
    saved = []
    try:
        pipe = build_pipeline(components, a.sample_sampler)
        for i, p in enumerate(prompts):
            seed = p.seed if p.seed is not None else t.seed + i
            logs.say(f"prompt: {p.prompt}")
            with t.accelerator.autocast():
                image = generate(pipe, p.prompt, p.negative, seed=seed, steps=p.steps, width=p.width,
                                 height=p.height, cfg_scale=p.cfg_scale, sampler=p.sampler)
            path = folder / f"{t.output_name}_{suffix}_{i:02d}_{time.strftime('%Y%m%d%H%M%S')}_{seed}.png"
            image.save(path)
            logs.say(f"sample image saved: {path}")
            saved.append(path)
    finally:
        torch.set_rng_state(rng_state)
        for m, was_training in modes:
            m.train(was_training)
        t.vae.to(vae_device)
    return saved
