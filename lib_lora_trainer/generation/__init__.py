"""Image generation for testing LoRAs: sampler names, sd-scripts prompt lines, diffusers pipelines."""

from .prompt_lines import PromptFileError, SamplePrompt, load_prompt_file, parse_prompt_line, parse_prompt_text
from .samplers import A1111_SAMPLERS, SD_SCRIPTS_SAMPLERS, all_sampler_names, make_scheduler, sampler_info

__all__ = [
    "A1111_SAMPLERS",
    "SD_SCRIPTS_SAMPLERS",
    "PromptFileError",
    "SamplePrompt",
    "all_sampler_names",
    "load_prompt_file",
    "make_scheduler",
    "parse_prompt_line",
    "parse_prompt_text",
    "sampler_info",
]
