"""The numbers behind vram.py: measured peaks, model sizes, and what is derived from documents.

Measured (shared/notes/gpu-anchors.md; one H200, 2026-11-27; SD1.5 architecture, 512 x 512, bf16,
SDPA, cached latents, AdamW; "GB" as the bench printed it from MiB, read here as GiB):
- sd-scripts v0.10.1 train_network.py, LoRA on text encoder + U-Net (kohya module set):
  rank 128 batch 1 5.2, rank 32 batch 1 4.3, rank 32 batch 4 8.4.
- a plain diffusers+peft loop, U-Net attention LoRA rank 32 only, prompts pre-encoded:
  batch 1 2.9, batch 4 6, batch 8 10.5, batch 16 19.

Architecture counts (exact, from the layer shapes):
- parameters: SD1 U-Net 859.5M, CLIP-L 123.1M, VAE 83.7M; SD2 U-Net 865.9M, OpenCLIP-H text 340.4M;
  SDXL U-Net 2567.5M, CLIP-L + OpenCLIP-bigG text 817.8M (123.1M + 694.7M).
- LoRA parameters per unit of rank, kohya module set (q/k/v/out, proj_in/out, ff; CLIP q/k/v/out,
  fc1, fc2): sum of (in + out) over the modules. SD1 U-Net 16 transformer blocks = 423,936 and
  CLIP-L 12 layers = 165,888 (rank 128 -> 75.5M parameters, a 151 MB fp16 file, as kohya's are).
  The attention-only set of the peft loop: 199,296.

Derived from documents, NOT measured (marked so in every estimate that uses them):
- SDXL activations: sd-scripts' docs say SDXL LoRA "can be done with 8GB GPU memory" with U-Net
  only, gradient checkpointing, cached text-encoder outputs and latents, an 8-bit optimizer or
  Adafactor and dim 4-8, and recommend 10-12 GB. 3.5 GiB per 1024 px image puts that recipe at
  about 7.9 GiB.
- Conv (LoCon) LoRA per unit of conv rank: the SD1 ResNet/down/upsample convolutions sum to about
  0.58M; SDXL taken as 1.3 x that.
- VAE encoding working set when latents are not cached: about 0.3 GiB per 512 px image.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = float(1 << 30)


@dataclass(frozen=True)
class Anchor:
    profile: str
    rank: int
    batch: int
    gib: float
    text: str


# SD1.5, 512 px, bf16, cached latents, AdamW: the only configurations measured.
ANCHORS: tuple[Anchor, ...] = (
    Anchor("sd-scripts", 128, 1, 5.2, "sd-scripts rank 128 batch 1: 5.2 GB"),
    Anchor("sd-scripts", 32, 1, 4.3, "sd-scripts rank 32 batch 1: 4.3 GB"),
    Anchor("sd-scripts", 32, 4, 8.4, "sd-scripts rank 32 batch 4: 8.4 GB"),
    Anchor("diffusers-peft", 32, 1, 2.9, "diffusers+peft rank 32 batch 1: 2.9 GB"),
    Anchor("diffusers-peft", 32, 4, 6.0, "diffusers+peft rank 32 batch 4: 6 GB"),
    Anchor("diffusers-peft", 32, 8, 10.5, "diffusers+peft rank 32 batch 8: 10.5 GB"),
    Anchor("diffusers-peft", 32, 16, 19.0, "diffusers+peft rank 32 batch 16: 19 GB"),
)
ANCHOR_SETUP = "SD1.5 512 px bf16 AdamW cached latents, H200"


@dataclass(frozen=True)
class Profile:
    """How an engine holds the model: which LoRA modules, whether the text encoder stays on the GPU."""
    name: str
    lora_modules: str         # "kohya" (TE + U-Net attention/proj/ff) or "attention" (U-Net attention only)
    te_on_gpu: bool           # text encoder kept on the GPU (measured runs: sd-scripts yes, peft loop no)


PROFILES = {
    "sd-scripts": Profile("sd-scripts", "kohya", True),
    "diffusers-peft": Profile("diffusers-peft", "attention", False),
}
# The builtin engine is diffusers+peft with sd-scripts' module set and text-encoder handling; its
# own peak has not been measured yet, so it is estimated as sd-scripts (the safe side) and the
# lean peft loop gives the low end of its range.
ENGINE_PROFILE = {"kohya": "sd-scripts", "builtin": "sd-scripts"}


@dataclass(frozen=True)
class ModelSize:
    unet: float               # parameters
    text: float
    vae: float
    native: int               # resolution the activation figure refers to
    act_gib: float | None     # activations per image at `native`, bf16, no checkpointing; None: fit
    lora_unet: int            # LoRA parameters per unit of rank, kohya set
    lora_unet_attention: int  # attention-only set
    lora_text: int
    lora_conv: int
    measured: bool            # activations measured (True) or derived from documents


MODELS = {
    "sd1": ModelSize(859.5e6, 123.1e6, 83.7e6, 512, None, 423_936, 199_296, 165_888, 578_560, True),
    "sd2": ModelSize(865.9e6, 340.4e6, 83.7e6, 512, None, 432_128, 207_488, 423_936, 578_560, True),
    "sdxl": ModelSize(2567.5e6, 817.8e6, 83.7e6, 1024, 3.5, 2_659_840, 1_451_520, 903_168, 752_128, False),
}

# fp32 master weight + fp32 gradient + optimizer state, bytes per trainable LoRA parameter
OPTIMIZER_BYTES = {"AdamW": 16, "AdamW8bit": 10, "Lion": 12, "Prodigy": 24, "Adafactor": 9}
GRADIENT_CHECKPOINTING_FACTOR = 0.6   # activations kept: the ~40% saving this project assumes
VAE_ENCODE_GIB_512 = 0.3              # per image, latents not cached (estimated)
RANGE_MEASURED = 0.15                 # +-15% around estimates scaled from measured anchors
RANGE_DOCUMENTED = 0.30               # +-30% where a term is derived from documents
