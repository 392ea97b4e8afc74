"""Writing and reading LoRA files the way kohya sd-scripts' networks.lora does."""

from .dataset_info import DatasetInfo, SubsetInfo, count_tags, make_bucket_info
from .hashes import addnet_hash_legacy, addnet_hash_safetensors, model_hash_legacy, sha256_file
from .io import addnet_hashes, load_lora, read_lora_header, save_lora
from .metadata import (
    SD_SCRIPTS_COMMIT,
    TrainingMetadataInput,
    base_model_version,
    build_metadata,
    finalize_metadata,
    format_optimizer,
    num_epochs_for,
)

__all__ = [
    "DatasetInfo", "SubsetInfo", "count_tags", "make_bucket_info",
    "addnet_hash_legacy", "addnet_hash_safetensors", "model_hash_legacy", "sha256_file",
    "addnet_hashes", "load_lora", "read_lora_header", "save_lora",
    "SD_SCRIPTS_COMMIT", "TrainingMetadataInput", "base_model_version", "build_metadata",
    "finalize_metadata", "format_optimizer", "num_epochs_for",
]
