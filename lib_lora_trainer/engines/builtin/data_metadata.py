"""The summaries sd-scripts writes into a LoRA's metadata, computed from TrainingData:
ss_tag_frequency, ss_dataset_dirs / ss_reg_dataset_dirs, ss_bucket_info, and DatasetInfo objects
(lora_file/dataset_info.py) for ss_datasets."""

from __future__ import annotations

import numpy as np


class DataMetadata:
    """Mixin for TrainingData (needs specs, items, buckets, _tag_frequency and
    _subset_captions)."""

    # --- metadata ---------------------------------------------------------------------------
    def tag_frequency(self) -> dict[str, dict[str, int]]:
        """ss_tag_frequency: {folder name: {tag: images}}; a folder met in several datasets counts once."""
        merged: dict[str, dict[str, int]] = {}
        for freq in self._tag_frequency:
            for folder, tags in freq.items():
                merged.setdefault(folder, dict(tags))
        return merged

    def _dirs(self, is_reg: bool) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for subsets in self._subset_captions:
            for subset, captions in subsets:
                count = len(captions)
                if subset.is_reg != is_reg or not count:
                    continue
                name, n = subset.image_dir.name, 2
                while name in out:
                    name, n = f"{subset.image_dir.name} ({n})", n + 1
                out[name] = {"n_repeats": subset.num_repeats, "img_count": count}
        return out

    def dataset_dirs(self) -> dict[str, dict[str, int]]:
        """ss_dataset_dirs: train folders only (sd-scripts keeps reg folders apart)."""
        return self._dirs(False)

    def reg_dataset_dirs(self) -> dict[str, dict[str, int]]:
        """ss_reg_dataset_dirs."""
        return self._dirs(True)

    def bucket_info(self, dataset_index: int = 0) -> dict | None:
        """ss_bucket_info of one dataset; None when it does not use buckets (as sd-scripts)."""
        if not self.specs[dataset_index].enable_bucket:
            return None
        buckets = self.buckets[dataset_index]
        errors = [abs(i.choice.ar_error) for i in self.items if i.dataset_index == dataset_index]
        return {"buckets": {i: {"resolution": reso, "count": len(v)}
                            for i, (reso, v) in enumerate(buckets.items())},
                "mean_img_ar_error": float(np.mean(errors)) if errors else 0.0}

    def dataset_infos(self) -> list:
        """The same data as lib_lora_trainer.lora_file.dataset_info.DatasetInfo objects, for the
        metadata writer (ss_datasets, ss_tag_frequency, ss_dataset_dirs)."""
        from lib_lora_trainer.lora_file.dataset_info import DatasetInfo, SubsetInfo
        out = []
        for d, spec in enumerate(self.specs):
            subsets = [SubsetInfo(str(s.image_dir), list(c), s.num_repeats, s.class_tokens, s.is_reg,
                                  flip_aug=s.flip_aug, shuffle_caption=s.shuffle_caption,
                                  keep_tokens=s.keep_tokens)
                       for s, c in self._subset_captions[d]]
            bucketed = spec.enable_bucket
            out.append(DatasetInfo(spec.resolution, subsets, spec.batch_size, bucketed,
                                   spec.min_bucket_reso if bucketed else None,
                                   spec.max_bucket_reso if bucketed else None,
                                   spec.bucket_no_upscale if bucketed else False, self.bucket_info(d)))
        return out
