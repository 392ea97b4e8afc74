"""The Result section (issue 12, items 4 and 6): it shows the selected job's LoRA, else the newest
succeeded one; "Send to txt2img" always acts or says why not (the browser script, run in node
against a stand-in page); "Test this LoRA" starts the host's tester and the progress shows."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from eval_helpers import FakeRenderer, succeeded_job
from lib_lora_trainer.hosts.a1111_renderer import A1111AutoTest
from lib_lora_trainer.jobs.service import JobService
from lib_lora_trainer.ui import result_section as R

ROOT = Path(__file__).resolve().parent.parent


class _Host:
    txt2img_available = True

    def __init__(self, service):
        self.service = service

    def job_service(self):
        return self.service


def _other_jobs(service, tmp_path):
    failed = service.store.create("later", "builtin", str(tmp_path / "f"), {}, state="running")
    failed = service.store.update(failed.id, state="failed", error="boom", finished_at=time.time() + 5)
    running = service.store.create("now", "builtin", str(tmp_path / "r"), {}, state="running")
    return failed, running


def test_result_follows_the_newest_succeeded_job_not_the_newest_job(tmp_path):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    older = succeeded_job(service, tmp_path, "zyr_a")
    newer = succeeded_job(service, tmp_path, "zyr_b")
    failed, running = _other_jobs(service, tmp_path)
    jobs = service.list()
    assert R.result_job(jobs, None) is not None and R.result_job(jobs, None).id == newer.id
    assert R.result_job(jobs, running).id == newer.id           # what the Train section shows after a reload
    assert R.result_job(jobs, older).id == older.id             # a selected succeeded job wins
    html, prompt, grid, report, _ = R.result_view(failed, jobs)
    assert prompt == "<lora:zyr_b:1>, zyrette" and f'data-job="{newer.id}"' in html
    assert f"job {failed.id} above is failed" in html and "not tested yet" in html
    assert R.result_view(service.get(older.id), jobs)[1] == "<lora:zyr_a:1>, zyrette"
    assert R.result_view(running, [running, failed]) == (R.EMPTY_HTML, "", None, "", "")
    assert R.shown_job_id(html) == newer.id and R.shown_job_id(R.EMPTY_HTML) is None


def test_send_to_txt2img_says_what_happened():
    assert "Sent to txt2img: &lt;lora:z:1&gt;, zy" in R.send_message("<lora:z:1>, zy", "sent")
    assert "No LoRA yet" in R.send_message("", "no-prompt") and "No LoRA yet" in R.send_message("  ", "sent")
    assert "no txt2img prompt" in R.send_message("<lora:z:1>", "no-txt2img")
    assert "script is not loaded" in R.send_message("<lora:z:1>", "")


def test_send_button_has_an_output_for_what_its_script_returns(tmp_path):
    """gradio 3.41 applies a _js function's return values to the event's outputs when there is no
    Python function: returning a value with no output is the page error `Cannot read properties of
    undefined (reading 'props')` on every click. The script's values must feed a Python function."""
    import gradio as gr

    with gr.Blocks() as blocks:
        parts = R.build(_Host(None))
    by_id = {id(b): i for i, b in blocks.blocks.items()}
    [dep] = [d for d in blocks.dependencies if by_id[id(parts["send"])] in [t[0] if isinstance(t, (list, tuple))
                                                                               else t for t in d["targets"]]]
    assert dep["js"] == "loraTrainerSendToTxt2img" and dep["backend_fn"]
    assert len(dep["inputs"]) == 2 and dep["outputs"] == [by_id[id(parts["message"])]]


def test_test_button_starts_the_hosts_tester_on_the_shown_job(tmp_path):
    tester = A1111AutoTest(FakeRenderer(delay=0.01), scorers=[], seeds=1)
    service = JobService(tmp_path / "data", tmp_path / "Lora", hooks=[tester])
    job = succeeded_job(service, tmp_path)
    host = _Host(service)
    assert "No LoRA yet" in R.start_test(host, R.EMPTY_HTML)
    html = R.result_view(job, service.list())[0]
    message = R.start_test(host, html)
    assert f"Testing job {job.id}" in message, message
    shown = R.result_view(job, service.list())
    assert "testing:" in shown[0] or "tested:" in shown[0]
    tester.wait(job.id, timeout=60)
    html, _, grid, report, _ = R.result_view(job, service.list())
    # 5 prompts x (base + 5 weights) + the preview, less weight 0 on 4 prompts (the base stands for it)
    assert 'data-test-state="done"' in html and f"tested: {5 * 6 + 1 - 4} pictures" in html
    assert grid and grid.endswith("grid_weights.png") and "## Grids" in report
    assert "no job with id &#x27;nope&#x27;" in R.start_test(host, '<div data-job="nope">')
    Path(job.installed_path).unlink()
    assert "no longer on disk" in R.start_test(host, html)


NODE_HARNESS = r"""
const fs = require('fs');
const calls = [];
function page(withTxt2img, value) {
  const textarea = withTxt2img ? {value: value, dispatchEvent: () => calls.push('event')} : null;
  return {textarea, app: {querySelector: (sel) => sel === '#txt2img_prompt textarea' ? textarea : null}};
}
let current = page(false, '');
global.document = {visibilityState: 'visible'};
global.window = global;
global.gradioApp = () => current.app;
global.updateInput = (el) => calls.push('updateInput');
global.switch_to_txt2img = () => calls.push('switch');
eval(fs.readFileSync(process.argv[2], 'utf8'));
const send = window.loraTrainerSendToTxt2img;
const out = {};
out.empty = send('', '');
out.standalone = send('<lora:z:1>, zy', '');
current = page(true, 'a cat');
out.sent = send('<lora:z:1>, zy', '');
out.again = send('<lora:z:1>, zy', 'sent');
out.value = current.textarea.value;
out.calls = calls;
console.log(JSON.stringify(out));
"""


def test_send_script_always_acts_or_says_why_not(tmp_path):
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS)
    r = subprocess.run([node, str(harness), str(ROOT / "javascript" / "lora_trainer.js")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["empty"] == ["", "no-prompt"]
    assert out["standalone"] == ["<lora:z:1>, zy", "no-txt2img"]
    assert out["sent"] == ["<lora:z:1>, zy", "sent"] and out["again"] == ["<lora:z:1>, zy", "sent"]
    assert out["value"] == "a cat, <lora:z:1>, zy"              # appended once, not on every click
    assert out["calls"] == ["updateInput", "switch", "updateInput", "switch"]


def test_ranking_table_sends_installed_cells_and_installs_the_recommended_checkpoint(tmp_path):
    """The table beside the grid (ui/ranking_table.py) from a test's report.json: cells of the
    installed file carry their `<lora:name:w>, trigger`; an earlier recommended file is installed
    by the button, after which its cells are the sendable ones."""
    import json

    from eval_helpers import make_lora, succeeded_job
    from lib_lora_trainer.evaluate.ranking import Cell, rank
    from lib_lora_trainer.hosts.standalone import StandaloneHost
    from lib_lora_trainer.lora_file.sidecar import read_sidecar

    host = StandaloneHost(data_dir=tmp_path / "data", lora_dir=tmp_path / "Lora")
    service = host.job_service()
    job = succeeded_job(service, tmp_path)
    installed = Path(job.installed_path)
    early = make_lora(Path(job.job_dir) / "output" / "zyr-000001.safetensors")
    cells = [Cell(early.name, 0, 1.0, {"concept": 0.8, "prompt_following": 0.8}),
             Cell(installed.name, 1, 0.5, {"concept": 0.6, "prompt_following": 0.8}),
             Cell(installed.name, 1, 1.0, {"concept": 0.9, "prompt_following": 0.2})]
    ranking = vars(rank(cells, {"prompt_following": 0.8}))
    test_dir = Path(job.job_dir) / "test"
    test_dir.mkdir()
    (test_dir / "report.json").write_text(json.dumps({"ranking": ranking}))
    (test_dir / "grid_weights.png").write_bytes(b"")   # a finished test has its grid
    html, _, _, _, table = R.result_view(job)
    assert f'data-best="{early.name}:1"' in table and "is not the installed one" in table
    assert table.count("data-lt-prompt=") == 2 and 'data-lt-prompt="&lt;lora:zyr:0.5&gt;, zyrette"' in table
    assert "prompt following 0.20 &lt; 0.8 x 0.80" in table

    message = R.install_recommended(host, html)
    assert "zyr.safetensors is now zyr-000001.safetensors, preferred weight 1" in message
    assert installed.read_bytes() == early.read_bytes() and read_sidecar(installed).preferred_weight == 1.0
    assert host.installed[-1] == str(installed)          # the host's Lora list is refreshed
    table = R.result_view(service.get(job.id))[4]
    assert table.count("data-lt-prompt=") == 1 and 'data-lt-prompt="&lt;lora:zyr:1&gt;, zyrette"' in table
    assert "is not the installed one" not in table
    assert "Cannot install" in R.install_recommended(host, html.replace(job.id, "nope"))
