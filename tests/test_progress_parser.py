"""ProgressParser on the real sd-scripts v0.10.1 logs, on real builtin-engine runs, and on synthetic lines.

The fixture expectations come from the fixture README's table and from timings.json (every update of
the `steps:` bar, read off the logs when they were captured), not from the parser itself.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import signal
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from lib_lora_trainer.jobs.progress import (
    ERROR_KINDS, RUN_START_MARKER, ProgressEvent, ProgressParser, ProgressState, classify_exit, describe_error,
    parse_duration, parse_rate, parse_tqdm,
)

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "sd-scripts" / "v0.10.1"
RUNS = sorted(p.name[: -len(".exitcode")] for p in FIXTURES.glob("*.exitcode")) if FIXTURES.is_dir() else []
each_run = pytest.mark.parametrize(
    "run", RUNS or [pytest.param(None, marks=pytest.mark.skip(reason=f"{FIXTURES} is not present"))])

SD15_FILES = ["VadymPanchenko_v1-step00000002", "VadymPanchenko_v1-step00000004", "VadymPanchenko_v1"]
SDXL_FILES = ["VadymPanchenko_v1-step00000001", "VadymPanchenko_v1-step00000002", "VadymPanchenko_v1"]
# The fixture README's table: final bar n/total and the LoRA files produced; None = the "No data found" runs.
README_TABLE = {
    "sd15_rich": (4, 4, SD15_FILES), "sd15_simple": (4, 4, SD15_FILES), "sd15_rich_cols200": (4, 4, SD15_FILES),
    "sd15_folder": (4, 4, SD15_FILES), "sd15_alpha_float": (4, 4, SD15_FILES),
    "sd15_badfolder": None, "sd15_badfolder_simple": None, "sd15_imgdir_as_root": None,
    "sdxl_rich": (2, 2, SDXL_FILES), "sdxl_simple": (2, 2, SDXL_FILES),
}
# Runs that should parse to the same events (timings aside).
SAME_EVENTS = [
    ["sd15_rich", "sd15_simple", "sd15_rich_cols200", "sd15_folder", "sd15_alpha_float"],
    ["sdxl_rich", "sdxl_simple"],
    ["sd15_badfolder", "sd15_badfolder_simple", "sd15_imgdir_as_root"],
]


# ---------------------------------------------------------------------------------------------
# helpers


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # exact: keeps every \r


@functools.lru_cache(maxsize=None)
def fixture(run: str) -> dict:
    stdout = read_text(FIXTURES / f"{run}.stdout.txt")
    stderr = read_text(FIXTURES / f"{run}.stderr.txt")
    timings = json.loads((FIXTURES / "timings.json").read_text(encoding="utf-8")) if (
        FIXTURES / "timings.json").is_file() else {}
    return {"stdout": stdout, "stderr": stderr, "exitcode": int((FIXTURES / f"{run}.exitcode").read_text()),
            "timings": timings.get(run) or {}}


def expected(run: str):
    """(final step, total, LoRA names) or None for a no-data run, from the README table or timings.json."""
    if run in README_TABLE:
        return README_TABLE[run]
    if not fixture(run)["timings"]:
        pytest.skip(f"{run} is neither in the README table nor in timings.json")
    final = fixture(run)["timings"].get("tqdm_steps_final")
    if not final:
        return None
    updates = fixture(run)["timings"]["tqdm_step_updates"]
    total = int(updates[-1].split("/")[1].split()[0])
    return final["steps"], total, None


def parse(streams: list[tuple[str, str]], parser: ProgressParser | None = None) -> tuple[list, ProgressParser]:
    p = parser or ProgressParser()
    events = []
    for stream, text in streams:
        events += p.feed(text, stream)
    events += p.finish()
    return events, p


@functools.lru_cache(maxsize=None)
def parsed(run: str):
    f = fixture(run)
    return parse([("stdout", f["stdout"]), ("stderr", f["stderr"])])


def chunks(text, rng: random.Random, lo: int = 1, hi: int = 50):
    i = 0
    while i < len(text):
        n = rng.randint(lo, hi)
        yield text[i:i + n]
        i += n


def frozen(events: list[ProgressEvent]) -> list[tuple]:
    """Events as comparable tuples (NaN equals NaN here)."""
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in asdict(e).values())
            for e in events]


def of_kind(events, kind):
    return [e for e in events if e.kind == kind]


def timing_updates(run: str) -> list[tuple[int, int, float | None]]:
    """(n, total, avr_loss) of every `steps:` bar update, as timings.json recorded them."""
    out = []
    for u in fixture(run)["timings"].get("tqdm_step_updates", []):
        m = re.match(r"(\d+)/(\d+) .* avr_loss=(\S+)$", u)
        out.append((int(m.group(1)), int(m.group(2)), None if m.group(3) == "-" else float(m.group(3))))
    return out


def needs_timings(run):
    if not fixture(run)["timings"] and expected(run) is not None:
        pytest.skip("timings.json has no entry for this run")


# ---------------------------------------------------------------------------------------------
# every fixture run


@each_run
def test_final_step_and_total_match_the_readme(run):
    events, p = parsed(run)
    exp = expected(run)
    if exp is None:  # "No data found": no training bar at all (its `0it` bars are not steps)
        assert p.state.step == 0 and p.state.total is None
        assert of_kind(events, "step") == []
        return
    step, total, _ = exp
    assert (p.state.step, p.state.total) == (step, total)
    last = of_kind(events, "step")[-1]
    assert (last.step, last.total) == (step, total)


@each_run
def test_saved_files_are_the_saving_checkpoint_lines_in_order(run):
    events, p = parsed(run)
    lines = re.findall(r"^saving checkpoint: (.+?)\s*$", fixture(run)["stdout"], re.M)
    assert p.state.saved == lines
    assert [e.path for e in of_kind(events, "saved")] == lines
    exp = expected(run)
    if exp is None:
        assert lines == [] and not p.state.model_saved and of_kind(events, "model_saved") == []
        return
    if exp[2] is not None:
        assert [Path(x).name for x in lines] == [f"{n}.safetensors" for n in exp[2]]
    # Only the final save logs "model saved." (on stderr with rich, on stdout with console_log_simple).
    saved = of_kind(events, "model_saved")
    assert len(saved) == 1 and p.state.model_saved and saved[0].path == lines[-1]


@each_run
def test_loss_history_has_one_point_per_step_ending_at_the_final_avr_loss(run):
    needs_timings(run)
    events, p = parsed(run)
    history = p.state.loss_history
    if expected(run) is None:
        assert history == [] and p.state.loss is None
        return
    assert history, "no loss points"
    steps = [s for s, _ in history]
    assert steps == list(range(1, expected(run)[0] + 1))
    last_in_log = re.findall(r"avr_loss=([^,\]\s]+)", fixture(run)["stderr"])[-1]
    assert history[-1][1] == float(last_in_log) == float(fixture(run)["timings"]["tqdm_steps_final"]["avr_loss"])
    assert p.state.loss == float(last_in_log)
    # tqdm prints step n first with step n-1's avr_loss: the point keeps the value printed last for n.
    last_for_step = {}
    for n, _, loss in timing_updates(run):
        if loss is not None:
            last_for_step[n] = loss
    assert history == sorted(last_for_step.items())


@each_run
def test_loss_history_never_shows_a_stale_point_while_running(run):
    # Fed one tqdm write at a time, the history is always a prefix of the final one: the first print of
    # step n (which still carries step n-1's avr_loss) never becomes a point of its own.
    f = fixture(run)
    final = parsed(run)[1].state.loss_history
    p = ProgressParser()
    p.feed(f["stdout"], "stdout")
    for piece in re.split(r"(?<=\r)", f["stderr"]):
        p.feed(piece, "stderr")
        h = p.state.loss_history
        assert h == final[: len(h)]
    p.finish()
    assert p.state.loss_history == final


@each_run
def test_step_events_are_the_distinct_training_bar_updates(run):
    needs_timings(run)
    events, _ = parsed(run)
    if expected(run) is None:
        return
    want = [(0, expected(run)[1], None)]  # the bar opens at 0/N
    for update in timing_updates(run):
        if update != want[-1]:  # the final bar is printed again on close
            want.append(update)
    assert [(e.step, e.total, e.loss) for e in of_kind(events, "step")] == want


@each_run
def test_rate_eta_and_elapsed_of_the_last_update(run):
    needs_timings(run)
    _, p = parsed(run)
    final = fixture(run)["timings"].get("tqdm_steps_final")
    if not final:
        assert p.state.rate_it_s is None and p.state.eta_s is None
        return
    value, unit = re.fullmatch(r"([\d.]+)(s/it|it/s)", final["rate"]).groups()
    want = 1 / float(value) if unit == "s/it" else float(value)
    assert p.state.rate_it_s == pytest.approx(want)
    assert p.state.elapsed_s == parse_duration(final["elapsed"]) > 0
    assert p.state.eta_s == 0


@each_run
def test_epoch_and_summary_block(run):
    events, p = parsed(run)
    if expected(run) is None:
        assert of_kind(events, "summary") == [] and of_kind(events, "epoch") == []
        return
    assert [(e.epoch, e.epochs) for e in of_kind(events, "epoch")] == [(1, 1)]
    assert (p.state.epoch, p.state.epochs) == (1, 1)
    (summary,) = of_kind(events, "summary")
    total = expected(run)[1]
    assert (summary.num_train_images, summary.num_reg_images, summary.batches_per_epoch, summary.num_epochs,
            summary.batch_size, summary.grad_accum, summary.total_steps) == (8, 0, 8, 1, 1, 1, total)
    assert p.state.summary["total_steps"] == total


@each_run
def test_outcome_no_data_runs_fail_despite_exit_code_0(run):
    events, p = parsed(run)
    code = fixture(run)["exitcode"]
    ok, kind, message = classify_exit(code, p.state)
    if expected(run) is None:
        assert code == 0
        assert (ok, kind) == (False, "no_data")
        assert p.state.failed and p.state.error_kind == "no_data"
        assert message.startswith(ERROR_KINDS["no_data"].title) and ERROR_KINDS["no_data"].fix in message
        assert [e.error_kind for e in of_kind(events, "error")] == ["no_data"]
    else:
        assert (ok, kind) == (True, None)
        assert not p.state.failed and of_kind(events, "error") == []


@each_run
def test_chunking_does_not_change_events_or_state(run):
    f = fixture(run)
    whole, ref = parsed(run)
    rng = random.Random(f"{run}-chunks")
    for _ in range(3):
        p = ProgressParser()
        events = []
        for stream in ("stdout", "stderr"):
            for piece in chunks(f[stream], rng):
                events += p.feed(piece, stream)
        events += p.finish()
        assert frozen(events) == frozen(whole)
        assert asdict(p.state) == asdict(ref.state)


@each_run
def test_bytes_split_inside_utf8_and_interleaved_streams_give_the_same_state(run):
    f = fixture(run)
    _, ref = parsed(run)
    rng = random.Random(f"{run}-bytes")
    pieces = {s: list(chunks(f[s].encode("utf-8"), rng, 1, 40)) for s in ("stdout", "stderr")}
    p = ProgressParser()
    while pieces["stdout"] or pieces["stderr"]:
        stream = rng.choice([s for s in pieces if pieces[s]])
        p.feed(pieces[stream].pop(0), stream)
    p.finish()
    keys = ("step", "total", "epoch", "epochs", "loss", "loss_history", "summary", "saved", "model_saved",
            "error_kind", "error_detail", "failed", "model_path", "warnings")
    assert {k: getattr(p.state, k) for k in keys} == {k: getattr(ref.state, k) for k in keys}


@pytest.mark.parametrize("group", SAME_EVENTS, ids=lambda g: g[0])
def test_rich_wrapped_simple_and_wide_logs_give_the_same_events(group):
    runs = [r for r in group if r in RUNS]
    if len(runs) < 2:
        pytest.skip("fewer than two of these runs are present")

    def normal(run):
        out = []
        for e in parsed(run)[0]:
            if e.kind == "warning":  # console_log_simple drops log levels: warnings are not marked there
                continue
            if e.kind == "step":
                out.append(("step", e.step, e.total, e.loss))
            elif e.kind in ("saved", "model_saved"):
                out.append((e.kind, Path(e.path).name))
            elif e.kind == "error":
                out.append(("error", e.error_kind, e.detail))
            else:
                out.append((e.kind, e.epoch, e.epochs, e.num_train_images, e.num_reg_images, e.batches_per_epoch,
                            e.num_epochs, e.batch_size, e.grad_accum, e.total_steps))
        return sorted(out, key=repr)  # stdout/stderr order differs between the modes

    first = normal(runs[0])
    assert first
    for other in runs[1:]:
        assert normal(other) == first, other


# ---------------------------------------------------------------------------------------------
# rich's layout, checked against the same messages printed unwrapped by console_log_simple


def needs(*runs):
    missing = [r for r in runs if r not in RUNS]
    if missing:
        pytest.skip(f"fixture runs missing: {missing}")


def test_wrapped_records_are_joined_back_word_path_and_cjk():
    needs("sd15_badfolder", "sd15_badfolder_simple", "sd15_rich")
    rich, simple = parsed("sd15_badfolder")[1].state, fixture("sd15_badfolder_simple")["stdout"].splitlines()
    # WARNING rows: "ignore directory without repeats" / "/" / 16 wide characters / the rest.
    assert rich.warnings[0] == ("ignore directory without repeats / "
                                "繰り返し回数のないディレクトリを無視します: VadymPanchenko")
    for text in rich.warnings:
        assert text in simple
    # ERROR: nine rows, English words then Japanese cut at the column edge.
    assert rich.error_detail in simple
    assert rich.error_detail.startswith("No data found. Please verify arguments (train_data_dir must be the parent")
    # A path cut in the middle ("…/sd15-random.s" / "afetensors").
    assert parsed("sd15_rich")[1].state.model_path == "/tmp/sdscripts-run/sd15-random.safetensors"


def test_record_glued_after_a_bar_is_still_read():
    needs("sd15_rich")
    events, p = parse([("stderr", fixture("sd15_rich")["stderr"])])
    # "…| 0/4 [00:00<?, ?it/s]2026-… INFO epoch is incremented." and "…avr_loss=1.14]2026-… INFO model saved."
    assert [(e.step, e.total) for e in of_kind(events, "step")][0] == (0, 4)
    assert len(of_kind(events, "model_saved")) == 1
    assert p.state.model_path == "/tmp/sdscripts-run/sd15-random.safetensors"


def test_glued_text_after_tqdm_padding():
    # tqdm pads a shorter bar with spaces; a record with a repeated (blank) timestamp keeps rich's columns.
    bar = "\rsteps:  50%|█████     | 2/4 [00:07<00:07,  3.64s/it, avr_loss=1.1]  "
    rows = ("2026-11-27 05:29:50 INFO     first                            train_util.py:784\n"
            + bar + "                    ERROR    No data found. Please verify   train_network.py:576\n"
            "                             arguments                                          \n")
    events, p = parse([("stderr", rows)])
    assert p.state.step == 2 and p.state.error_kind == "no_data"
    assert p.state.error_detail == "No data found. Please verify arguments"
    events, p = parse([("stderr", bar + " error: the loss is NaN at step 3 (epoch 1)\n")])
    assert p.state.error_kind == "nan" and "step 3" in p.state.error_detail


# ---------------------------------------------------------------------------------------------
# tqdm


@pytest.mark.parametrize("text,want", [
    ("4.20s/it", 1 / 4.20), ("1.13it/s", 1.13), ("110376.42it/s", 110376.42), ("?it/s", None),
    ("2.5kit/s", 2500.0), ("0.00s/it", None), ("", None),
])
def test_rates_s_per_it_become_it_per_s(text, want):
    assert parse_rate(text) == (pytest.approx(want) if want is not None else None)


@pytest.mark.parametrize("text,want", [
    ("00:12", 12), ("01:00", 60), ("59:59", 3599), ("1:02:03", 3723), ("12:00:00", 43200), ("100:00:01", 360001),
    ("?", None), ("", None), ("a:b", None),
])
def test_durations_including_hours(text, want):
    assert parse_duration(text) == want


def test_bar_fields_eta_with_hours_and_unknown_values():
    events, p = parse([("stderr", "\rsteps:   1%|          | 12/5000 [1:02:03<10:20:00, 310.25s/it, avr_loss=0.0812]"
                                  "\rsteps:   0%|          | 0/5000 [00:00<?, ?it/s]\n")])
    first, second = of_kind(events, "step")
    assert (first.step, first.total, first.elapsed_s, first.eta_s, first.loss) == (12, 5000, 3723, 37200, 0.0812)
    assert first.rate_it_s == pytest.approx(1 / 310.25)
    assert (second.step, second.eta_s, second.rate_it_s, second.loss) == (0, None, None, None)
    u = parse_tqdm("steps:  25%|██▌       | 1/4 [00:04<00:12,  4.20s/it, Keys Scaled=3, avr_loss=1.12]tail")
    assert (u.desc, u.n, u.total, u.postfix) == ("steps", 1, 4, {"Keys Scaled": "3", "avr_loss": "1.12"})
    assert "steps:  25%|██▌       | 1/4 [00:04<00:12,  4.20s/it, Keys Scaled=3, avr_loss=1.12]"[u.end - 1] == "]"


def test_other_bars_are_not_training_steps():
    text = ("\r  0%|          | 0/4 [00:00<?, ?it/s]"
            "\r100%|██████████| 4/4 [00:03<00:00,  1.13it/s]\n"
            "\rread caption:  50%|█████     | 2/4 [00:00<00:00, 25191.02it/s]\n"
            "\r0it [00:00, ?it/s]\r0it [00:00, ?it/s]\n"
            "\rLoading pipeline components...:  60%|██████    | 3/5 [00:00<00:00, 23.17it/s]\n"
            "\rvalidation steps:  50%|█████     | 1/2 [00:01<00:01,  1.00s/it, val_loss=0.5]\n")
    events, p = parse([("stderr", text)])
    assert events == [] and p.state.step == 0 and p.state.total is None and p.state.loss_history == []


def test_unfinished_bar_shows_in_state_without_an_event():
    p = ProgressParser()
    events = p.feed("\rsteps:   0%|          | 0/4 [00:00<?, ?it/s]"
                    "\rsteps:  25%|██▌       | 1/4 [00:04<00:12,  4.2", "stderr")
    assert events == [ProgressEvent("step", step=0, total=4, elapsed_s=0.0)]
    assert p.state.step == 0
    assert p.feed("0s/it, avr_loss=1.12]", "stderr") == []  # tqdm writes no newline after an update
    assert (p.state.step, p.state.loss, p.state.eta_s) == (1, 1.12, 12)
    assert p.state.loss_history == []  # points come from finished updates only
    events = p.feed("\rsteps:  50%", "stderr")
    assert [(e.step, e.loss) for e in events] == [(1, 1.12)] and p.state.loss_history == [(1, 1.12)]


def test_loss_history_for_skipped_prints_equal_values_and_a_resumed_bar():
    def bar(n, loss=None, total=6):
        return (f"\rsteps: {100 * n // total:3d}%|##| {n}/{total} [00:01<00:01,  1.00it/s"
                + (f", avr_loss={loss}]" if loss else "]"))
    # tqdm skips an update print when steps are fast (mininterval); equal averages are still one point each.
    text = bar(0) + bar(1, 1.0) + bar(2, 1.0) + bar(3, 1.0) + bar(3, 1.2) + bar(4, 1.2) + bar(4, 1.2)
    # A resumed attempt (appended log) restarts at step 3: points from there on are replaced.
    text += "\n" + bar(3) + bar(3, 0.9) + bar(4, 0.9) + bar(4, 0.8) + bar(5, 0.7) + "\n"
    _, p = parse([("stderr", text)])
    assert p.state.loss_history == [(1, 1.0), (2, 1.0), (3, 0.9), (4, 0.8), (5, 0.7)]


def test_nan_loss_in_the_bar():
    text = ("\rsteps:  10%|#| 1/10 [00:01<00:09,  1.00it/s, avr_loss=1.06]"
            "\rsteps:  20%|#| 2/10 [00:02<00:08,  1.00it/s, avr_loss=nan]"
            "\rsteps:  30%|#| 3/10 [00:03<00:07,  1.00it/s, avr_loss=nan]\n")
    events, p = parse([("stderr", text)])
    assert math.isnan(p.state.loss) and p.state.loss_history == [(1, 1.06)]
    assert [e.error_kind for e in of_kind(events, "error")] == ["nan"]  # once, not on every step
    assert classify_exit(0, p.state)[:2] == (False, "nan")  # sd-scripts trains on and exits 0


# ---------------------------------------------------------------------------------------------
# errors

TB = "Traceback (most recent call last):\n  File \"/x/train_network.py\", line 1, in <module>\n    main()\n"
ERROR_CASES = [
    ("oom", "stderr", TB + "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a "
                           "total capacity of 7.79 GiB of which 3.06 MiB is free.\n"),
    ("oom", "stderr", TB + "RuntimeError: CUDA error: out of memory\nCUDA kernel errors might be asynchronously "
                           "reported at some other API call.\n"),
    ("oom", "stderr", "[rank0]: " + TB.replace("\n  ", "\n[rank0]:   ") + "[rank0]: torch.cuda.OutOfMemoryError: x\n"),
    ("nan", "stderr", "error: the loss is NaN at step 5 (epoch 1); nothing more was saved. Lower the learning rate.\n"),
    ("nan", "stderr", "\rsteps:  20%|##| 2/10 [00:02<00:08,  1.00it/s, avr_loss=nan]\n"),
    ("no_data", "stdout", "No data found. Please verify arguments (train_data_dir must be the parent of folders "
                          "with images) / 画像がありません。\n"),
    ("no_data", "stderr", "error: No data found in train_data_dir '/d/img': it must be the parent of image folders\n"),
    ("missing_model", "stderr",
     "2026-11-27 05:29:40 ERROR    model is not found as a file or in Hugging     train_util.py:5546\n"
     "                             Face, perhaps file name is wrong?: /m/x                      \n"),
    ("missing_model", "stderr", TB + "FileNotFoundError: [Errno 2] No such file or directory: '/m/base.safetensors'\n"),
    ("missing_model", "stderr", TB + "huggingface_hub.errors.HFValidationError: Repo id must be in the form "
                                     "'repo_name' or 'namespace/repo_name': '/m/nope.safetensors'.\n"),
    ("missing_model", "stderr", "error: /m/nope.safetensors: no such file or folder. Check the path.\n"),
    ("missing_model", "stderr", "error: /m/lora.safetensors: this looks like a LoRA file. Pick a base model.\n"),
    ("fp16_cpu", "stderr", TB + "ValueError: fp16 mixed precision requires a GPU (not 'cpu').\n"),
    ("fp16_cpu", "stderr", "error: mixed_precision = \"fp16\" requires a CUDA GPU; use \"no\" (or \"bf16\") on CPU.\n"),
    ("tokenizer_download", "stderr", TB + "OSError: Can't load tokenizer for 'openai/clip-vit-large-patch14'. If you "
                                          "were trying to load it from 'https://huggingface.co/models', ...\n"),
    ("tokenizer_download", "stderr", TB + "OSError: We couldn't connect to 'https://huggingface.co' to load this file, "
                                          "couldn't find it in the cached files.\n"),
    ("tokenizer_download", "stderr", TB + "OSError: openai/clip-vit-large-patch14 does not appear to have a file named "
                                          "vocab.json.\n"),
    ("tokenizer_download", "stderr", TB + "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find the requested "
                                          "files in the disk cache and outgoing traffic has been disabled.\n"),
    ("config", "stderr", "error: run.toml: unknown key 'learning_rte' (sd-scripts would ignore it silently).\n"),
    ("config", "stderr", "usage: train_network.py [-h] [--v2]\ntrain_network.py: error: unrecognized arguments: --x\n"),
    ("config", "stderr", "usage: x\nlib_lora_trainer.engines.builtin.train: error: the following arguments are "
                         "required: --config_file\n"),
    ("traceback", "stderr", TB + "KeyError: 'lora_unet_x'\n"),
]


@pytest.mark.parametrize("kind,stream,text", ERROR_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_error_kinds(kind, stream, text):
    events, p = parse([(stream, text)])
    errors = of_kind(events, "error")
    assert [e.error_kind for e in errors] == [kind]
    assert errors[0].message == ERROR_KINDS[kind].title and errors[0].fix == ERROR_KINDS[kind].fix
    assert errors[0].detail
    assert p.state.failed and p.state.error_kind == kind and p.state.error_fix
    ok, got, message = classify_exit(1, p.state)
    assert (ok, got) == (False, kind) and ERROR_KINDS[kind].fix in message and ERROR_KINDS[kind].title in message


def test_every_listed_kind_has_a_title_and_a_fix():
    for kind in ("oom", "nan", "no_data", "missing_model", "fp16_cpu", "tokenizer_download", "config", "traceback"):
        assert ERROR_KINDS[kind].title and ERROR_KINDS[kind].fix
        assert describe_error(kind, "x.").endswith(ERROR_KINDS[kind].fix)


def test_ordinary_lines_are_not_errors():
    text = ("The following values were not passed to `accelerate launch` and had defaults used instead:\n"
            "/x/deepspeed_utils.py:131: SyntaxWarning: \"is not\" with a literal. Did you mean \"!=\"?\n"
            "load tokenizer from cache: /tmp/tok/openai_clip-vit-large-patch14\n"
            "2026-11-27 05:29:29 INFO     CUDA out of memory is only a word here      x.py:1\n"
            "prompt: a photo, error: none\n")
    events, p = parse([("stdout", text)])
    assert of_kind(events, "error") == [] and not p.state.failed


def test_first_error_stays_primary_and_a_bare_traceback_is_only_a_fallback():
    launcher = TB + ("subprocess.CalledProcessError: Command '['python', 'train_network.py']' returned non-zero "
                     "exit status 1.\n")
    # accelerate's own traceback after the trainer's: the trainer's error stays.
    _, p = parse([("stderr", ERROR_CASES[0][2] + launcher)])
    assert p.state.error_kind == "oom" and [e["kind"] for e in p.state.errors] == ["oom", "traceback"]
    # An unrecognised traceback first, then a known error: the known one is the primary error.
    _, p = parse([("stderr", TB + "KeyError: 'x'\n" + "error: the loss is NaN at step 2\n")])
    assert p.state.error_kind == "nan"
    # Two known errors: the first one.
    _, p = parse([("stderr", ERROR_CASES[13][2] + ERROR_CASES[5][2])])
    assert p.state.error_kind == "fp16_cpu"


# ---------------------------------------------------------------------------------------------
# exit status


def test_classify_exit():
    empty = ProgressState()
    assert classify_exit(0, empty)[:2] == (True, None)
    assert classify_exit(1, empty) == (False, "exit", "the trainer exited with code 1")
    ok, kind, message = classify_exit(-9, empty)
    assert (ok, kind) == (False, "killed") and "signal 9" in message and "SIGKILL" in message
    assert "signal 15 (SIGTERM)" in classify_exit(-15, empty)[2]
    assert classify_exit(143, empty)[:2] == (False, "interrupted")  # killed before the builtin could save

    _, p = parse([("stdout", "saving checkpoint: /o/x-step00000012.safetensors\n"
                             "stopped at step 12/5000: saved /o/x-step00000012.safetensors\n")])
    assert p.state.stopped
    for code in (130, 143):
        assert classify_exit(code, p.state) == (False, "stopped",
                                                "stopped at step 12/5000: saved /o/x-step00000012.safetensors")
    # Through `accelerate launch` the stopped trainer's 143 becomes 1 plus a CalledProcessError traceback.
    _, p2 = parse([("stdout", "stopped at step 3/9: saved /o/y.safetensors\n"),
                   ("stderr", TB + "subprocess.CalledProcessError: Command 'x' returned non-zero exit status 143.\n")])
    assert classify_exit(1, p2.state)[:2] == (False, "stopped")

    _, p = parse([("stderr", "2026-11-27 05:31:57 ERROR    something unusual                   x.py:1\n")])
    assert not p.state.failed and classify_exit(0, p.state)[0]
    assert classify_exit(3, p.state) == (False, "exit", "the trainer exited with code 3: something unusual")


def test_run_start_marker_forgets_the_previous_attempts_outcome():
    _, p = parse([("stderr", "error: the loss is NaN at step 2\n"),
                  ("stdout", "stopped at step 2/4: saved /o/a.safetensors\n" + RUN_START_MARKER + " attempt 2\n")])
    assert not p.state.failed and not p.state.stopped and p.state.error_kind is None
    assert classify_exit(0, p.state)[0]


def test_builtin_lines():
    text = ("loading model for process 0/2\nWARNING: dataset #1: 9 reg images for 8 train images\n"
            "sample image saved: /o/sample/x_000010_00_20261127_42.png\n"
            "removing old checkpoint: /o/x-000001.safetensors\n")
    events, p = parse([("stdout", text)])
    assert p.state.num_processes == 2
    assert [e.message for e in of_kind(events, "warning")] == ["dataset #1: 9 reg images for 8 train images"]
    assert p.state.samples == ["/o/sample/x_000010_00_20261127_42.png"]
    assert [e.path for e in of_kind(events, "sample")] == p.state.samples
    assert p.state.removed == ["/o/x-000001.safetensors"]


# ---------------------------------------------------------------------------------------------
# real builtin-engine runs (tiny model, CPU)


@pytest.fixture(scope="session")
def builtin_logs(tmp_path_factory, tiny_model):
    """Real logs of the builtin engine: a 4-step run saving every 2 steps, a missing model, fp16 on the
    CPU, and a run stopped by SIGTERM. (A NaN run takes ~25 s; test_builtin_engine_runs has one, and
    test_glued_text_after_tqdm_padding copies the shape of its output.)"""
    from engine_helpers import ROOT, env, make_dataset, train_cmd, write_configs

    base = tmp_path_factory.mktemp("builtin_logs")
    img = make_dataset(base / "ds")
    plans = {
        "ok": ({"save_every_n_steps": 2}, tiny_model),
        "missing_model": (None, base / "nope.safetensors"),
        "fp16": ({"mixed_precision": "fp16"}, tiny_model),
        "stop": ({"max_train_steps": 5000}, tiny_model),
    }

    def start(name):
        over, model = plans[name]
        d = base / name
        d.mkdir()
        cmd = train_cmd(*write_configs(d, model, img, over))
        with open(d / "stdout.txt", "wb") as out, open(d / "stderr.txt", "wb") as err:
            return subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=out, stderr=err), d

    logs = {}

    def collect(name, proc, d):
        proc.wait(timeout=600)
        logs[name] = {"stdout": read_text(d / "stdout.txt"), "stderr": read_text(d / "stderr.txt"),
                      "exitcode": proc.returncode}

    # Two CPU cores: the two error runs (start-up only) go along with the short run, then the stop run.
    first = {name: start(name) for name in ("ok", "missing_model", "fp16")}
    for name, (proc, d) in first.items():
        collect(name, proc, d)
    proc, d = start("stop")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if re.search(rb"steps:\s+\d+%.*\| [1-9]\d*/5000", (d / "stderr.txt").read_bytes()):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    collect("stop", proc, d)
    return logs


@pytest.mark.slow
def test_builtin_run_parses_like_sd_scripts(builtin_logs):
    log = builtin_logs["ok"]
    assert log["exitcode"] == 0, log["stderr"][-2000:]
    events, p = parse([("stdout", log["stdout"]), ("stderr", log["stderr"])])
    s = p.state
    assert (s.step, s.total, s.epoch, s.epochs) == (4, 4, 1, 1)
    lines = re.findall(r"^saving checkpoint: (.+?)\s*$", log["stdout"], re.M)
    assert s.saved == lines == [e.path for e in of_kind(events, "saved")]
    assert [Path(x).name for x in lines] == ["tiny_lora-step00000002.safetensors", "tiny_lora.safetensors"]
    assert all(Path(x).is_file() for x in lines)
    assert s.model_saved and len(of_kind(events, "model_saved")) == 1
    assert [x for x, _ in s.loss_history] == [1, 2, 3, 4]
    assert s.loss_history[-1][1] == float(re.findall(r"avr_loss=([^,\]\s]+)", log["stderr"])[-1])
    (summary,) = of_kind(events, "summary")
    assert (summary.num_train_images, summary.batches_per_epoch, summary.total_steps) == (8, 8, 4)
    assert s.rate_it_s and s.rate_it_s > 0
    assert classify_exit(0, s) == (True, None, "finished at step 4/4")
    # chunking invariance on this log too
    rng = random.Random(7)
    q = ProgressParser()
    again = [e for stream in ("stdout", "stderr") for piece in chunks(log[stream], rng) for e in q.feed(piece, stream)]
    assert frozen(again + q.finish()) == frozen(events)


@pytest.mark.slow
@pytest.mark.parametrize("name,code,kind", [("missing_model", 2, "missing_model"), ("fp16", 2, "fp16_cpu")])
def test_builtin_failures(builtin_logs, name, code, kind):
    log = builtin_logs[name]
    if name == "fp16" and log["exitcode"] == 0:
        pytest.skip("a CUDA GPU is present: fp16 trains")
    assert log["exitcode"] == code, log["stderr"][-2000:]
    events, p = parse([("stdout", log["stdout"]), ("stderr", log["stderr"])])
    assert p.state.error_kind == kind and p.state.failed
    assert classify_exit(code, p.state)[:2] == (False, kind)
    assert [e["kind"] for e in p.state.errors] == [kind] and not p.state.saved


@pytest.mark.slow
def test_builtin_stop_is_classified_stopped(builtin_logs):
    log = builtin_logs["stop"]
    assert log["exitcode"] == 143, log["stderr"][-2000:]
    events, p = parse([("stdout", log["stdout"]), ("stderr", log["stderr"])])
    (stopped,) = of_kind(events, "stopped")
    assert stopped.total == 5000 and stopped.step >= 1 and Path(stopped.path).is_file()
    assert p.state.saved[-1] == stopped.path and not p.state.failed
    ok, kind, message = classify_exit(143, p.state)
    assert (ok, kind) == (False, "stopped") and message.startswith(f"stopped at step {stopped.step}/5000")
