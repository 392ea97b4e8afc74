"""Train the demo model from nothing: VAE, then UNet + text encoder, on the demo world.

Reproducible: every random draw comes from `seed` (data, init, noise, order), torch runs
with deterministic algorithms on CPU, so the same seed and thread count give the same model.
Resumable: with a checkpoint folder, a stopped build goes on from its last checkpoint and ends
with the same weights as an uninterrupted one (random generator states are saved too).
Held-out looks (pink hair, buns) never appear in the base model's data.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lib_lora_trainer.tokenizer.clip_bpe import get_tokenizer

from . import model_arch
from .render import render
from .world import ATTRIBUTES, HELD_OUT, Person, describe, expression_phrase, hair_phrase, random_person

MAX_TOKENS = 77


@dataclass
class BaseTrainingPlan:
    seed: int = 1234
    images: int = 16000
    vae_steps: int = 2000
    vae_batch: int = 16
    vae_lr: float = 1e-3
    unet_steps: int = 3000
    unet_batch: int = 32
    unet_lr: float = 1e-3
    text_encoder_lr: float = 5e-4
    warmup: int = 100
    caption_dropout: float = 0.1
    noise_offset: float = 0.3   # per-channel constant added to the noise (see train_unet)
    min_snr_gamma: float = 5.0  # loss weight min(SNR, gamma) / SNR (0: off), see train_unet
    ema_decay: float = 0.998
    log_every: int = 100
    continue_from: str = ""     # a built demo model file: keep its VAE, train its UNet + text encoder further
    checkpoint_dir: str = ""    # where a build saves its state, and resumes from when restarted
    checkpoint_every: int = 200  # a multiple of log_every: a resumed build logs the same losses


@dataclass
class BaseTrainingLog:
    plan: dict
    seconds: dict = field(default_factory=dict)
    vae_loss: list = field(default_factory=list)        # (step, mean L1 over the last log_every steps)
    unet_loss: list = field(default_factory=list)
    scaling_factor: float = 0.0
    vae_reconstruction_l1: float = 0.0                  # on held-back pictures, 0..1 pixel scale
    torch_version: str = torch.__version__
    threads: int = 0


# --- data --------------------------------------------------------------------

def tag_caption(p: Person, rng: random.Random) -> str:
    """Comma-separated tags in random order, some left out: teaches the model prompts that do
    not name every attribute (the LoRA captions and users' prompts don't)."""
    article = "an" if p.clothing_colour[0] in "aeiou" else "a"
    tags = [hair_phrase(p), f"{p.skin} skin", f"{article} {p.clothing_colour} {p.clothing}", expression_phrase(p),
            f"{p.background} background"]
    if p.glasses == "yes":
        tags.append("glasses")
    rng.shuffle(tags)
    keep = tags[: rng.randint(2, len(tags))]
    return ", ".join([p.gender, *keep])


def make_corpus(n: int, seed: int) -> tuple[np.ndarray, list[list[str]], list[Person]]:
    """n pictures (uint8, N x 128 x 128 x 3) with 3 captions each: one full sentence, two tag lists."""
    rng = random.Random(seed)
    images = np.empty((n, model_arch.RESOLUTION, model_arch.RESOLUTION, 3), dtype=np.uint8)
    captions, people = [], []
    for i in range(n):
        p = random_person(rng)
        people.append(p)
        images[i] = np.asarray(render(p, model_arch.RESOLUTION, seed=seed * 1_000_003 + i))
        captions.append([describe(p), tag_caption(p, rng), tag_caption(p, rng)])
    return images, captions, people


def tokenize(texts: list[str]) -> torch.Tensor:
    """SD1 convention: bos, ids, eos, padded with eos to 77 (truncated to fit)."""
    tok = get_tokenizer()
    out = torch.full((len(texts), MAX_TOKENS), tok.eos_id, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [tok.bos_id, *tok.encode(text)[: MAX_TOKENS - 2], tok.eos_id]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


# --- checkpoints (resume) ------------------------------------------------------

class Checkpoints:
    """One file per stage in the plan's checkpoint folder, replaced atomically; no folder: no-op."""

    def __init__(self, folder: str, every: int):
        self.folder = Path(folder) if folder else None
        self.every = every
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def load(self, stage: str) -> dict | None:
        path = self.folder / f"{stage}.pt" if self.folder else None
        return torch.load(path, weights_only=False) if path and path.is_file() else None

    def due(self, step: int, total: int) -> bool:
        return bool(self.folder) and ((step + 1) % self.every == 0 or step + 1 == total)

    def save(self, stage: str, step: int, opt, sched, gen: torch.Generator, loss_log: list, **modules) -> None:
        """The state both stages share (step, optimizer, schedule, generator, loss log) + theirs."""
        from lib_lora_trainer import atomic

        state = {"step": step, "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                 "loss_log": list(loss_log), **modules}
        with atomic.atomic_path(self.folder / f"{stage}.pt") as tmp:
            torch.save(state, tmp)

    def restore(self, stage: str, opt, sched, gen: torch.Generator, loss_log: list) -> dict | None:
        """Puts the shared state back (loss_log in place); returns the whole state for the stage's own
        parts, or None when there is no checkpoint."""
        state = self.load(stage)
        if state:
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            loss_log[:] = state["loss_log"]
        return state


# --- training ----------------------------------------------------------------

def _lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))) * 0.9 + 0.1
    return f


def _crops(images: np.ndarray, idx: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    full = images.shape[1]
    if size >= full:
        return to_tensor(images[idx.numpy()])
    xy = torch.randint(0, full - size + 1, (len(idx), 2), generator=gen).tolist()
    return to_tensor(np.stack([images[i, y:y + size, x:x + size] for i, (x, y) in zip(idx.tolist(), xy)]))


def train_vae(images: np.ndarray, plan: BaseTrainingPlan, log: BaseTrainingLog, say=print, ckpt: Checkpoints | None = None):
    """images: uint8 N x H x W x 3. Trains on random model_arch.VAE_CROP crops."""
    from diffusers import AutoencoderKL

    ckpt = ckpt or Checkpoints("", 0)
    torch.manual_seed(plan.seed)
    vae = AutoencoderKL.from_config(model_arch.vae_config(1.0))
    opt = torch.optim.AdamW(vae.parameters(), lr=plan.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(plan.warmup, plan.vae_steps))
    gen = torch.Generator().manual_seed(plan.seed + 1)
    held = min(256, len(images) // 4)  # held back to measure reconstruction
    train = images[:-held]
    running, start = [], 0
    state = ckpt.restore("vae", opt, sched, gen, log.vae_loss)
    if state:
        vae.load_state_dict(state["model"])
        start = state["step"]
        say(f"vae: resuming at step {start}")
    for step in range(start, plan.vae_steps):
        idx = torch.randint(0, len(train), (plan.vae_batch,), generator=gen)
        x = _crops(train, idx, model_arch.VAE_CROP, gen)
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        recon = vae.decode(z).sample
        # L1 for sharp flat colours; a tiny KL keeps latents near N(0, 1) as SD's VAE does.
        loss = F.l1_loss(recon, x) + 1e-6 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % plan.log_every == 0:
            log.vae_loss.append((step + 1, round(float(np.mean(running)), 5)))
            say(f"vae step {step + 1}/{plan.vae_steps} loss {np.mean(running):.4f}")
            running = []
        if ckpt.due(step, plan.vae_steps):
            ckpt.save("vae", step + 1, opt, sched, gen, log.vae_loss, model=vae.state_dict())
    vae.eval()
    with torch.no_grad():
        test = to_tensor(images[-held:])
        recon = torch.cat([vae.decode(vae.encode(test[i:i + 32]).latent_dist.mean).sample for i in range(0, held, 32)])
        log.vae_reconstruction_l1 = round(float((recon - test).abs().mean() / 2), 5)
    return vae


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    """uint8 N x H x W x 3 -> latent means (unscaled)."""
    return torch.cat([vae.encode(to_tensor(images[i:i + batch])).latent_dist.mean for i in range(0, len(images), batch)])


def train_unet(latents: torch.Tensor, token_ids: torch.Tensor, plan: BaseTrainingPlan, log: BaseTrainingLog,
               say=print, unet=None, text_encoder=None, ckpt: Checkpoints | None = None):
    """latents: N x 4 x 16 x 16 (already scaled); token_ids: N x K x 77 (K captions per picture)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lib_lora_trainer.models.configs import scheduler_config

    torch.manual_seed(plan.seed + 2)
    if unet is None:
        unet = UNet2DConditionModel.from_config(model_arch.UNET)
        text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(model_arch.TEXT_ENCODER))
    noise_scheduler = DDPMScheduler.from_config(scheduler_config(False))
    params = [{"params": list(unet.parameters()), "lr": plan.unet_lr},
              {"params": list(text_encoder.parameters()), "lr": plan.text_encoder_lr}]
    opt = torch.optim.AdamW(params, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(plan.warmup, plan.unet_steps))
    ema = [p.detach().clone() for p in [*unet.parameters(), *text_encoder.parameters()]]
    live = [*unet.parameters(), *text_encoder.parameters()]
    empty = tokenize([""])[0]
    alphas = noise_scheduler.alphas_cumprod
    gen = torch.Generator().manual_seed(plan.seed + 3)
    snr = alphas / (1 - alphas)
    running, start = [], 0
    ckpt = ckpt or Checkpoints("", 0)
    state = ckpt.restore("unet", opt, sched, gen, log.unet_loss)
    if state:
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        for e, saved in zip(ema, state["ema"]):
            e.copy_(saved)
        start = state["step"]
        say(f"unet: resuming at step {start}")
    unet.train()
    text_encoder.train()
    for step in range(start, plan.unet_steps):
        idx = torch.randint(0, len(latents), (plan.unet_batch,), generator=gen)
        which = torch.randint(0, token_ids.shape[1], (plan.unet_batch,), generator=gen)
        ids = token_ids[idx, which].clone()
        drop = torch.rand(plan.unet_batch, generator=gen) < plan.caption_dropout
        ids[drop] = empty  # unconditional examples, for classifier-free guidance
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        if plan.noise_offset:
            # On 16x16 latents the mean of the noised picture still shows its colours at t=999, so a
            # model learns to take the background from the starting noise and ignore the prompt
            # (measured: same seed -> same colours whatever the prompt). A per-channel offset makes
            # that mean uninformative, so the colours must come from the text.
            noise = noise + plan.noise_offset * torch.randn((x0.shape[0], x0.shape[1], 1, 1), generator=gen)
        t = torch.randint(0, len(alphas), (plan.unet_batch,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        cond = text_encoder(ids)[0]
        pred = unet(xt, t, cond).sample
        loss = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        if plan.min_snr_gamma:
            # Min-SNR weighting (Hang et al. 2023): the nearly clean timesteps, where the noise is
            # easy to tell and the picture's layout and colours are already decided, weigh less.
            loss = loss * (snr[t].clamp(max=plan.min_snr_gamma) / snr[t])
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(live, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(plan.ema_decay, (1 + step) / (10 + step))  # warm-up of the average
            for e, p in zip(ema, live):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        running.append(loss.item())
        if (step + 1) % plan.log_every == 0:
            log.unet_loss.append((step + 1, round(float(np.mean(running)), 5)))
            say(f"unet step {step + 1}/{plan.unet_steps} loss {np.mean(running):.4f}")
            running = []
        if ckpt.due(step, plan.unet_steps):
            ckpt.save("unet", step + 1, opt, sched, gen, log.unet_loss, unet=unet.state_dict(),
                      text_encoder=text_encoder.state_dict(), ema=ema)
    with torch.no_grad():
        for e, p in zip(ema, live):
            p.copy_(e)
    unet.eval()
    text_encoder.eval()
    return unet, text_encoder


def train_base_model(plan: BaseTrainingPlan, say=print):
    """(unet, vae, text_encoder, log): the whole recipe."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    log = BaseTrainingLog(plan=asdict(plan), threads=torch.get_num_threads())
    assert "pink" in HELD_OUT["hair_colour"] and set(ATTRIBUTES)  # the recipe depends on the held-out looks
    t0 = time.perf_counter()
    images, captions, _ = make_corpus(plan.images, plan.seed)
    pixels = images
    ckpt = Checkpoints(plan.checkpoint_dir, plan.checkpoint_every)
    token_ids = torch.stack([tokenize(c) for c in captions])
    log.seconds["data"] = round(time.perf_counter() - t0, 1)
    say(f"corpus: {plan.images} pictures, {log.seconds['data']} s")

    unet = text_encoder = None
    t0 = time.perf_counter()
    if plan.continue_from:
        # A second stage: same data recipe, new noise draws (seed + 10), the first stage's VAE kept.
        import tempfile

        from lib_lora_trainer.models.loading import load_components

        from .demo_model import install_demo_model

        with tempfile.TemporaryDirectory() as tmp:  # the loader wants the config files beside the file
            c = load_components(install_demo_model(Path(tmp), Path(plan.continue_from)))
            vae, unet, text_encoder = c.vae, c.unet, c.text_encoders[0]
            for m in (vae, unet, text_encoder):
                m.float().requires_grad_(True)
        log.scaling_factor = float(vae.config.scaling_factor)
        plan = BaseTrainingPlan(**{**asdict(plan), "seed": plan.seed + 10})
        latents = encode_latents(vae, pixels) * log.scaling_factor
        say(f"continuing from {plan.continue_from}: its VAE (scaling factor {log.scaling_factor}) is kept")
    else:
        vae = train_vae(pixels, plan, log, say, ckpt)
        raw = encode_latents(vae, pixels)
        # SD's convention: latents * scaling_factor have unit variance.
        log.scaling_factor = round(float(1.0 / raw.std()), 5)
        vae.register_to_config(scaling_factor=log.scaling_factor)
        latents = raw * log.scaling_factor
        say(f"vae: reconstruction L1 {log.vae_reconstruction_l1}, scaling factor {log.scaling_factor}")
    log.seconds["vae"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    unet, text_encoder = train_unet(latents, token_ids, plan, log, say, unet, text_encoder, ckpt)
    log.seconds["unet"] = round(time.perf_counter() - t0, 1)
    return unet, vae, text_encoder, log
