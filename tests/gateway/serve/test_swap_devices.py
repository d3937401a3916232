"""gateway.serve.deployments: the cores an LLM replica reports, which decide whether smoke tests overlap."""

from __future__ import annotations

from gateway.serve.deployments import _bound_cores


def test_bound_cores_reads_every_form_of_the_vllm_binding():
    assert _bound_cores("1") == ["1"]
    assert _bound_cores("0,1") == ["0", "1"]
    assert _bound_cores("0-3") == ["0", "1", "2", "3"]
    assert _bound_cores("0-1|4-5") == ["0", "1", "4", "5"]
    assert _bound_cores("auto") == []  # unknown: counted as sharing
    assert _bound_cores("") == []
