"""The training run: set-up (accelerator, data, models, LoRA, optimizer), then the step loop."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import torch

from . import logs
from .args import TrainArgs, text_encoder_lr
from .errors import ConfigError, TrainingFailed
from .network import (inject, load_kohya_weights, lora_parameters, select_modules, state_dict_kohya,
                      text_encoder_name)
from .optim import make_optimizer, make_scheduler, optimizer_description

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Trainer:
    def __init__(self, args: TrainArgs, dataset_raw: dict | None, dataset_config_path: str | None = None):
        self.args = args
        self.dataset_raw = dataset_raw
        self.dataset_config_path = dataset_config_path
        self.output_name = args.output_name or "last"
        self.output_dir = Path(args.output_dir)
        self.started_at = time.time()
        self.global_step = 0
        self.first_epoch = 0
        self.skip_batches = 0

    # ---- set-up -------------------------------------------------------------------------
    def run(self) -> None:
        from .loop import train_loop

        for note in self.args.notes:
            logs.say(note)
        self._accelerator()
        self._data()
        self._models()
        self._network()
        self._caches()
        self._optimizer()
        self._resume()
        train_loop(self)

    def _accelerator(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        a = self.args
        cuda = torch.cuda.is_available()
        if a.torch_compile and not cuda and a.dynamo_backend == "inductor":
            # Measured with torch 2.13 on CPU: the forward matches eager, but 74 of 96 LoRA
            # gradients of the tiny UNet differ by 20-60%. aot_eager is exact.
            raise ConfigError("torch_compile with dynamo_backend \"inductor\" computes wrong gradients on CPU "
                              "(torch 2.13); set dynamo_backend = \"aot_eager\" or remove torch_compile.")
        if a.mixed_precision == "fp16" and not cuda:
            raise ConfigError("mixed_precision = \"fp16\" requires a CUDA GPU; use \"no\" (or \"bf16\") on CPU.")
        log_dir = None
        if a.logging_dir:
            log_dir = str(Path(a.logging_dir) / f"{a.log_prefix or ''}{time.strftime('%Y%m%d%H%M%S')}")
        # cpu=True on CPU makes `accelerate launch --multi_gpu` run real data-parallel gloo processes.
        self.accelerator = Accelerator(gradient_accumulation_steps=a.gradient_accumulation_steps,
                                       mixed_precision=a.mixed_precision, cpu=not cuda,
                                       log_with="tensorboard" if log_dir else None, project_dir=log_dir)
        self.device = self.accelerator.device
        self.weight_dtype = WEIGHT_DTYPES[a.mixed_precision]
        self.seed = a.seed if a.seed is not None else random.randint(0, 2**32 - 1)
        # Each process gets its own noise stream; the data order is shared (seeded in data.py).
        set_seed(self.seed + self.accelerator.process_index)
        # Noise and timesteps come from a generator of our own: compiled graphs and sampling may
        # draw from the global one, which must not change what a run trains.
        self.noise_generator = torch.Generator(device=self.device).manual_seed(
            self.seed + self.accelerator.process_index)
        self.is_main = self.accelerator.is_main_process
        logs.say(f"accelerator device: {self.device}")
        # sd-scripts' line; tests read the world size from it.
        logs.say(f"loading model for process {self.accelerator.process_index}/{self.accelerator.num_processes}")
        if log_dir and self.is_main:
            self.accelerator.init_trackers("network_train")

    def _data(self) -> None:
        from .data import TrainingData
        from .dataset_config import DatasetConfigError, load_dataset_blueprint

        source = self.dataset_config_path or "run.toml"
        try:
            self.specs = load_dataset_blueprint(self.dataset_raw, self.args.values, source=source)
            self.data = TrainingData(self.specs, seed=self.seed)
        except DatasetConfigError as exc:
            raise ConfigError(str(exc)) from None
        for warning in self.specs.warnings:
            logs.say(f"WARNING: {warning}")
        logs.say(f"{self.data.num_train_images} train images with repeats.")
        logs.say(f"{self.data.num_reg_images} reg images with repeats.")

    def _models(self) -> None:
        from lib_lora_trainer.models.detect import ModelError
        from lib_lora_trainer.models.loading import load_components

        a = self.args
        path = a.pretrained_model_name_or_path
        logs.say(f"load StableDiffusion checkpoint: {path}")
        try:
            c = load_components(path, v_prediction=a.v_parameterization or None)
        except ModelError as exc:
            raise ConfigError(str(exc)) from None
        if a.v2 and c.model_type != "sd2":
            raise ConfigError(f"v2 = true, but {path} is a {c.model_type} checkpoint: remove v2 (or choose an SD2 "
                              "model).")
        self.components = c
        self.model_type = c.model_type
        if a.tokenizer_cache_dir:
            self._fill_tokenizer_cache(Path(a.tokenizer_cache_dir))
        from .dataset_config import DatasetConfigError, verify_bucket_reso_steps
        try:  # sd-scripts: bucket steps must divide by 64 (SD1/2) or 32 (SDXL)
            verify_bucket_reso_steps(self.specs, 32 if c.model_type == "sdxl" else 64)
        except DatasetConfigError as exc:
            raise ConfigError(str(exc)) from None
        self.v_prediction = self._prediction_type(c)
        self.unet, self.vae = c.unet, c.vae
        self.text_encoders, self.tokenizers = list(c.text_encoders), list(c.tokenizers)
        self.noise_scheduler = c.noise_scheduler
        self.noise_scheduler.register_to_config(prediction_type="v_prediction" if self.v_prediction else "epsilon")
        for m in (self.unet, self.vae, *self.text_encoders):
            m.requires_grad_(False)
            m.eval()
        self.vae.to(self.device, dtype=self._vae_dtype())
        self.unet.to(self.device)
        for te in self.text_encoders:
            te.to(self.device)
        if a.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()

    def _prediction_type(self, c) -> bool:
        """v-prediction exactly when the TOML says v_parameterization, as in sd-scripts (which never
        reads it from the model); a model that says otherwise only gets a warning."""
        a = self.args
        if c.declared_v_prediction is not None and c.declared_v_prediction != a.v_parameterization:
            said = "v-prediction" if c.declared_v_prediction else "epsilon-prediction"
            logs.say(f"WARNING: the model declares {said}, but v_parameterization = "
                     f"{str(a.v_parameterization).lower()}: training as the TOML says (as sd-scripts does).")
        elif c.declared_v_prediction is None and c.model_type == "sd2" and not a.v_parameterization:
            logs.say("note: this SD2 file does not say whether it is a v-prediction model; training "
                     "epsilon-prediction. For a 768-v model (SD 2.x 768) set v_parameterization = true.")
        return bool(a.v_parameterization)

    def _vae_dtype(self) -> torch.dtype:
        """The weight dtype, or fp32 with no_half_vae (sd-scripts). SDXL's VAE overflows in fp16, so
        it stays in fp32 there even without no_half_vae (sd-scripts would give NaN latents)."""
        half = self.weight_dtype != torch.float32
        sdxl_fp16 = self.model_type == "sdxl" and self.weight_dtype == torch.float16
        if self.args.no_half_vae and (not half or sdxl_fp16):
            logs.say("note: no_half_vae = true has no effect here: the VAE already runs in fp32.")
        return torch.float32 if (self.args.no_half_vae or sdxl_fp16) else self.weight_dtype

    def _fill_tokenizer_cache(self, folder: Path) -> None:
        """Same folders sd-scripts reads, so one run.toml serves both engines offline."""
        from lib_lora_trainer.tokenizer import write_tokenizer_cache_dir

        expected = folder / "openai_clip-vit-large-patch14"
        if not (expected / "vocab.json").is_file() and self.is_main:
            write_tokenizer_cache_dir(folder, include_sdxl=self.model_type == "sdxl")
        logs.say(f"load tokenizer from cache: {expected}")

    def _network(self) -> None:
        a = self.args
        dim = a.network_dim or 4  # sd-scripts: None -> 4
        self.network_dim = dim
        self.train_unet = not a.network_train_text_encoder_only
        self.train_te = not a.network_train_unet_only
        unet_name = self._unet_name_fn()
        self.unet_modules = select_modules(self.unet, "lora_unet", unet_name, dim, a.network_alpha,
                                           a.conv_dim, a.conv_alpha, is_unet=True) if self.train_unet else []
        prefixes = ["lora_te"] if len(self.text_encoders) == 1 else ["lora_te1", "lora_te2"]
        self.te_modules = [select_modules(te, p, text_encoder_name, dim, a.network_alpha) if self.train_te else []
                           for te, p in zip(self.text_encoders, prefixes)]
        logs.say(f"create LoRA network. base dim (rank): {dim}, alpha: {a.network_alpha}")
        inject(self.unet, self.unet_modules, a.network_dropout)
        for te, mods in zip(self.text_encoders, self.te_modules):
            inject(te, mods, a.network_dropout)
        logs.say(f"create LoRA for Text Encoder: {sum(len(m) for m in self.te_modules)} modules.")
        logs.say(f"create LoRA for U-Net: {len(self.unet_modules)} modules.")
        # Frozen weights in the training precision, LoRA weights in fp32 (as sd-scripts does).
        for model in (self.unet, *self.text_encoders):
            for name, p in model.named_parameters():
                p.data = p.data.float() if (".lora_A." in name or ".lora_B." in name) else p.data.to(self.weight_dtype)
        if a.network_weights:
            from lib_lora_trainer.lora_file import load_lora
            tensors, _ = load_lora(a.network_weights)
            n = load_kohya_weights(self.unet, self.unet_modules, tensors, a.network_weights)
            for te, mods in zip(self.text_encoders, self.te_modules):
                if mods:
                    n += load_kohya_weights(te, mods, tensors, a.network_weights)
            logs.say(f"load network weights from {a.network_weights}: {n} modules")
        if self.train_unet:
            self.unet.train()  # peft's LoRA dropout follows the module's training flag
        if self.train_te:
            for te in self.text_encoders:
                te.train()
                if a.gradient_checkpointing:
                    te.gradient_checkpointing_enable()

    def _unet_name_fn(self):
        if self.model_type != "sdxl":
            return lambda path: path  # SD1/SD2: sd-scripts' UNet uses diffusers' module names
        from lib_lora_trainer.models.ldm_names import unet_module_path_to_ldm
        config = dict(self.unet.config)
        return lambda path: unet_module_path_to_ldm(path, config)

    def _caches(self) -> None:
        from . import validation

        a = self.args
        validation.prepare(self)   # its latents, while the VAE is on the training device
        if a.cache_latents or a.cache_latents_to_disk:
            logs.say("caching latents...")
            # With several processes the main one writes the disk cache first; the others read it.
            with self.accelerator.main_process_first():
                report = self.data.cache_latents(self.encode_images, to_disk=a.cache_latents_to_disk,
                                                 cache_key=self._cache_key())
            for warning in report.warnings:
                logs.say(f"WARNING: {warning}")
            self.latents_cached = True
            if self.device.type == "cuda":  # as sd-scripts does: the VAE is not needed on the GPU now
                self.vae.to("cpu")
                torch.cuda.empty_cache()
        else:
            self.latents_cached = False
        self.te_cache = None
        if a.cache_text_encoder_outputs:
            if self.train_te:
                raise ConfigError("cache_text_encoder_outputs needs network_train_unet_only = true (the text "
                                  "encoder cannot be cached while it trains).")
            if self.data.has_caption_augmentation():
                raise ConfigError("cache_text_encoder_outputs cannot be used with shuffle_caption or "
                                  "caption_dropout_rate: captions would change every step.")
            self.te_cache = {}

    def _cache_key(self) -> str:
        """Latents depend on the VAE: key disk caches by the base model file's identity."""
        p = Path(self.args.pretrained_model_name_or_path)
        st = p.stat()
        return f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}"

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        dist = vae.encode(images.to(self.device, dtype=vae.dtype)).latent_dist
        return (dist.sample() * vae.config.scaling_factor).float().cpu()

    def _optimizer(self) -> None:
        a = self.args
        lr = a.learning_rate
        groups = []
        unet_lr = a.unet_lr if a.unet_lr is not None else lr
        te_lr = text_encoder_lr(a)
        te_lr = te_lr if te_lr is not None else lr
        if self.unet_modules and unet_lr > 0:  # sd-scripts: an lr of 0 leaves that part out
            groups.append({"params": lora_parameters(self.unet), "lr": unet_lr})
        if any(self.te_modules) and te_lr > 0:
            groups.append({"params": [p for te in self.text_encoders for p in lora_parameters(te)], "lr": te_lr})
        if not groups:
            raise ConfigError("nothing to train: every learning rate is 0 or no LoRA module was created.")
        self.optimizer, opt_kwargs = make_optimizer(a, groups, lr, self.device.type == "cuda")
        self.optimizer_name = optimizer_description(self.optimizer, opt_kwargs)
        logs.say(f"use {type(self.optimizer).__name__} optimizer | {opt_kwargs}")
        world = self.accelerator.num_processes
        self.batches_per_epoch = self.data.batches_per_rank(world)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / a.gradient_accumulation_steps)
        if a.max_train_epochs:
            self.max_steps = a.max_train_epochs * self.steps_per_epoch
        else:
            self.max_steps = a.max_train_steps
        self.num_epochs = math.ceil(self.max_steps / self.steps_per_epoch)
        from lib_lora_trainer.config.steps import warmup_steps
        self.warmup = warmup_steps(a.lr_warmup_steps, self.max_steps)
        self.lr_scheduler = make_scheduler(a, self.optimizer, self.max_steps, self.warmup)
        trained = [self.unet] if self.unet_modules else []
        trained += [te for te, mods in zip(self.text_encoders, self.te_modules) if mods]
        prepared = self.accelerator.prepare(*trained, self.optimizer)
        prepared = list(prepared) if isinstance(prepared, (list, tuple)) else [prepared]
        self.optimizer = prepared[-1]
        wrapped = iter(prepared[:-1])
        self.unet_forward = next(wrapped) if self.unet_modules else self.unet
        self.te_forward = [next(wrapped) if mods else te for te, mods in zip(self.text_encoders, self.te_modules)]
        self.trainable = [p for g in self.optimizer.param_groups for p in g["params"]]
        if a.torch_compile and self.unet_modules:
            # Only the forward is compiled; module paths (and so the LoRA names) stay as they are.
            self.unet_forward = torch.compile(self.unet_forward, backend=a.dynamo_backend)
            logs.say(f"torch.compile U-Net forward (backend {a.dynamo_backend})")

    def _resume(self) -> None:
        if not self.args.resume:
            return
        from .state import load_state, restore_rng
        try:
            counters, blob = load_state(self.args.resume)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.load_lora_tensors(blob["lora"], self.args.resume)
        self.optimizer.load_state_dict(blob["optimizer"])
        self.lr_scheduler.load_state_dict(blob["scheduler"])
        restore_rng(blob)
        if blob.get("noise_generator") is not None:
            self.noise_generator.set_state(blob["noise_generator"])
        self.global_step = int(counters["current_step"])
        self.first_epoch = int(counters["current_epoch"]) - 1
        self.skip_batches = int(counters.get("epoch_step", 0))
        if self.skip_batches >= self.batches_per_epoch:
            self.first_epoch, self.skip_batches = self.first_epoch + 1, 0
        logs.say(f"resume from {self.args.resume}: step {self.global_step}, epoch {self.first_epoch + 1}")

    # ---- outputs -------------------------------------------------------------------------
    def lora_tensors(self) -> dict[str, torch.Tensor]:
        out = state_dict_kohya(self.unet, self.unet_modules)
        for te, mods in zip(self.text_encoders, self.te_modules):
            out.update(state_dict_kohya(te, mods))
        return out

    def load_lora_tensors(self, tensors: dict, source: str) -> None:
        if self.unet_modules:
            load_kohya_weights(self.unet, self.unet_modules, tensors, source)
        for te, mods in zip(self.text_encoders, self.te_modules):
            if mods:
                load_kohya_weights(te, mods, tensors, source)

    def fail(self, message: str) -> None:
        raise TrainingFailed(message)
