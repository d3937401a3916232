"""`lethe serve` on its default config and the real SmolLM2 model: README examples, clean stop."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from tests.support.lethe_server import LetheServer

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(language: str, must_contain: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)
    matching = [b for b in blocks if must_contain in b]
    assert matching, f"README has no {language} block containing {must_contain!r}"
    return matching[0]


@pytest.fixture(scope="module")
def default_server(tmp_path_factory, models_dir, smollm2_dir):
    """Only the home, the port and the prepared-models cache differ from what `make run` does."""
    home = tmp_path_factory.mktemp("lethe-home-default")
    server = LetheServer(home, {"LETHE_MODELS_DIR": str(models_dir)}, home / "serve.log")
    try:
        yield server.start()
    finally:
        server.stop()
        server.kill_leftovers()


def test_capital_of_france_mentions_paris(default_server):
    client = openai.OpenAI(base_url=f"{default_server.base_url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=32,
        temperature=0,
    )
    assert "Paris" in completion.choices[0].message.content


def test_readme_curl_example_works_when_pasted(default_server):
    script = readme_block("bash", "/v1/chat/completions").replace(":8000", f":{default_server.port}")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout
    assert '"finish_reason"' in out.stdout


def test_readme_openai_example_works_when_pasted(default_server):
    script = readme_block("python", "OpenAI(").replace(":8000", f":{default_server.port}")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_sigterm_stops_everything(default_server):
    """Runs last in this module: Ctrl-C/SIGTERM exits 0 and leaves no Ray or engine process."""
    assert default_server.processes(), "expected Ray workers while serving"
    code = default_server.stop()
    assert code == 0, default_server.log_tail()
    deadline = time.monotonic() + 30
    while default_server.processes() and time.monotonic() < deadline:
        time.sleep(1)
    leftovers = [" ".join(p.cmdline()[:3]) for p in default_server.processes()]
    assert leftovers == []
