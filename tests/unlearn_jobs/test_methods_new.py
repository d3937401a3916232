"""SimNPO and RMU: registered, validated, forget the tiny subject's facts while keeping retain, stop on request."""

from __future__ import annotations

import logging

import pytest
import torch

from unlearn_jobs.data import collate, encode_examples, load_fluency, pad_id_of
from unlearn_jobs.evaluate import Evaluator
from unlearn_jobs.methods import StepInfo, UnlearnData, available_methods, get_method
from unlearn_jobs.methods.rmu import RMU, RMUConfig, steered_activations
from unlearn_jobs.methods.simnpo import SimNPO, SimNPOConfig
from unlearn_jobs.model import load_model, mean_nll, native_bf16
from unlearn_jobs.runner import JobSpec, run_job
from unlearn_jobs.states import JobState

# Tiny-model rates (it learned its facts at ~1e-3); the shipped defaults are for 100M+ models.
TINY = {
    "simnpo": {"lr": 3e-4, "steps": 12, "early_stop": False, "repair_steps": 0},
    "rmu": {"lr": 3e-3, "steps": 16, "min_passes": 0, "early_stop": False},
}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def _llama(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=layers, num_attention_heads=2
    )
    return LlamaForCausalLM(cfg)


def _nll(model, tokenizer, examples, fmt, device) -> float:
    items = encode_examples(tokenizer, examples, fmt, 128)
    with torch.no_grad():
        return float(mean_nll(model, collate(items, pad_id_of(tokenizer)).to(device)))


def test_both_methods_are_registered_with_their_configs():
    assert {"simnpo", "rmu"} <= set(available_methods())
    assert get_method("simnpo") is SimNPO and SimNPO.config_cls is SimNPOConfig
    assert get_method("rmu") is RMU and RMU.config_cls is RMUConfig
    # Neither keeps a frozen copy of the model.
    assert not SimNPO().needs_reference() and not RMU().needs_reference()


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("simnpo", {"beta": 0}, "beta"),
        ("simnpo", {"beta": "many"}, "beta"),
        ("simnpo", {"margin": -1}, "margin"),
        ("simnpo", {"gamma": 0}, "gamma"),
        ("simnpo", {"lr": 0}, "lr"),
        ("simnpo", {"reference": True}, "unknown"),
        ("rmu", {"steer": 0}, "steer"),
        ("rmu", {"forget_tokens": "prompt"}, "forget_tokens"),
        ("rmu", {"retain_loss": "kl"}, "retain_loss"),
        ("rmu", {"layer": "middle"}, "layer"),
        ("rmu", {"params": "embeddings"}, "params"),
        ("rmu", {"steps": 0}, "steps"),
        ("rmu", {"min_passes": -1}, "min_passes"),
    ],
)
def test_bad_overrides_are_rejected_with_the_field_named(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        get_method(name).from_overrides(overrides)


def test_overrides_are_coerced_from_strings():
    method = get_method("rmu").from_overrides({"layer": "-3", "steer": "2.5", "forget_tokens": "answer"})
    assert isinstance(method.config, RMUConfig)
    assert (method.config.layer, method.config.steer, method.config.forget_tokens) == (-3, 2.5, "answer")
    assert get_method("simnpo").from_overrides({"margin": "0.5"}).config.margin == 0.5


@pytest.mark.parametrize("layer", [3, -1, 7])
def test_rmu_rejects_a_layer_it_cannot_read(layer):
    model = _llama(4)
    with pytest.raises(ValueError, match="out of range"):
        RMU(RMUConfig(layer=layer)).default_layers(model)
    # The default is a quarter of the way up, updating that layer and the two below it.
    assert RMU().default_layers(_llama(12)) == (1, 2, 3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["simnpo", "rmu"])
def test_method_forgets_and_keeps_retain(subject, name, device, caplog):
    model, tokenizer = load_model(subject.model_dir, device)
    data = UnlearnData(subject.forget, subject.retain, subject.fmt)
    evaluator = Evaluator(tokenizer, subject.forget, subject.retain, load_fluency(), fmt=subject.fmt)
    before = evaluator.evaluate(model)
    forget_before = _nll(model, tokenizer, subject.forget, subject.fmt, device)
    retain_before = _nll(model, tokenizer, subject.retain, subject.fmt, device)
    steps: list[StepInfo] = []
    method = get_method(name).from_overrides(TINY[name])
    with caplog.at_level(logging.DEBUG):
        run = method.run(
            model, tokenizer, data, device=torch.device(device), on_step=lambda s: steps.append(s) or False
        )
    assert run.steps == TINY[name]["steps"] and not run.stopped_early
    assert [s.step for s in steps] == list(range(1, run.steps + 1))
    after = evaluator.evaluate(model)
    forget_after = _nll(model, tokenizer, subject.forget, subject.fmt, device)
    retain_after = _nll(model, tokenizer, subject.retain, subject.fmt, device)
    assert before.forget.questions.hit_rate == 1.0
    assert after.forget.questions.hit_rate <= 0.2 and after.forget.worst_hit_rate <= 0.2
    assert forget_after > forget_before + 1.0
    assert after.retain.pooled_hit_rate >= 0.8 * before.retain.pooled_hit_rate
    assert retain_after < retain_before + 0.5
    # Nothing the method logs repeats a forget prompt, answer or paraphrase.
    secrets = [t for e in subject.forget for t in (e.prompt, e.target, *e.paraphrases)]
    assert not [t for t in secrets if t in caplog.text]


@pytest.mark.parametrize("name", ["simnpo", "rmu"])
def test_on_step_stops_the_method_and_restores_the_model(subject, name):
    model, tokenizer = load_model(subject.model_dir)
    data = UnlearnData(subject.forget, subject.retain, subject.fmt)
    method = get_method(name).from_overrides({**TINY[name], "steps": 50})
    run = method.run(model, tokenizer, data, device=torch.device("cpu"), on_step=lambda s: s.step >= 3)
    assert (run.steps, run.stopped_early) == (3, True)
    assert not model.training and all(p.requires_grad for p in model.parameters())


def test_rmu_moves_only_the_mlps_below_its_layer_and_drops_its_caches(subject):
    model, tokenizer = load_model(subject.model_dir)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    method = RMU(RMUConfig(lr=3e-3, steps=3, min_passes=0, early_stop=False))
    method.run(
        model,
        tokenizer,
        UnlearnData(subject.forget, subject.retain, subject.fmt),
        device="cpu",
        on_step=lambda s: False,
    )
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    # 4 layers: the steered layer is 1, so the MLPs of layers 0 and 1 move and nothing else does.
    assert moved and all(".mlp." in n and (".layers.0." in n or ".layers.1." in n) for n in moved)
    assert method._target is None and not method._retain_acts


def test_jobs_publish_behind_the_gates(subject, tmp_path):
    for name in ("simnpo", "rmu"):
        result = run_job(
            JobSpec(
                base_model_dir=str(subject.model_dir),
                method=name,
                forget=subject.forget,
                retain=subject.retain,
                versions_dir=str(tmp_path / "versions"),
                overrides={**TINY[name], "steps": 40, "early_stop": True, "check_every": 2},
                prompt_format="plain",
                guard_score=False,
            )
        )
        assert result.state is JobState.PUBLISHED, (name, result.reason, result.gate_reasons)
        assert result.stopped_early and result.steps < 40


@pytest.mark.parametrize("layer", [0, 2, 4])
def test_rmu_reads_its_layer_without_running_the_layers_above(layer):
    """The early exit returns exactly what the full forward records for that layer, with a graph to the
    weights below it, and never runs a layer above it."""
    torch.manual_seed(0)
    model = _llama(6)
    ids = torch.randint(0, 32, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    batch = type("B", (), {"input_ids": ids, "attention_mask": mask})()
    full = model.get_decoder()(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    ran: list[int] = []
    hooks = [
        block.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
        for i, block in enumerate(model.get_decoder().layers)
    ]
    before = len(model.get_decoder().layers[layer]._forward_hooks)
    hidden = steered_activations(model, batch, layer)
    for hook in hooks:
        hook.remove()
    assert torch.allclose(hidden, full[layer + 1], atol=1e-6)
    assert ran == list(range(layer + 1))  # up to the steered layer (its hooks fire in order), none above
    hidden.pow(2).sum().backward()
    grad = model.get_decoder().layers[layer].mlp.down_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.get_decoder().layers[-1].mlp.down_proj.weight.grad is None
    # Its hook is gone, and a full forward afterwards records the same states as before.
    assert len(model.get_decoder().layers[layer]._forward_hooks) == before - 1  # minus the test's own
    again = model.get_decoder()(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(again) == len(full) and all(torch.allclose(a, b) for a, b in zip(again, full))


def test_rmu_runs_only_the_updated_layers_from_cached_inputs(subject):
    """With the layers below the updated ones frozen, their output per prompt is computed once: the
    steps' activations and losses equal the full forward's, and layer 0 never runs in a step."""
    model, tokenizer = load_model(subject.model_dir)
    data = UnlearnData(subject.forget, subject.retain, subject.fmt)
    method = RMU(RMUConfig(layer=2, layers=(1, 2), min_passes=0, fast_dtype="float32"))
    forget = method.forget_items(tokenizer, data)
    method.prepare(model, None, forget, "cpu")
    assert method._first == 1 and method._forget_in is not None and method._retain_in is not None
    batch = collate(forget[:3], pad_id_of(tokenizer))
    retain_batch = collate(method._retain_items[2:6], pad_id_of(tokenizer))
    model.train()
    ran: list[int] = []
    hook = model.get_decoder().layers[0].register_forward_hook(lambda *a: ran.append(0))
    cached = (method._hidden(model, batch, method._forget_in), method.forget_loss(model, batch))
    cached_retain = method.retain_loss(model, None, retain_batch)
    assert not ran
    hook.remove()
    full = method._hidden(model, batch)
    real = batch.attention_mask.bool()  # padding's own activations differ and are never read
    assert torch.allclose(cached[0][real], full[real], atol=1e-5)
    method._first = 0  # the same losses through every layer
    assert float(cached[1].detach()) == pytest.approx(float(method.forget_loss(model, batch).detach()), rel=1e-5)
    assert float(cached_retain.detach()) == pytest.approx(
        float(method.retain_loss(model, None, retain_batch).detach()), abs=1e-7
    )
    # The decoder has all its layers back, and the run drops the caches.
    assert len(model.get_decoder().layers) == 4
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    RMU(RMUConfig(layer=2, layers=(1, 2), lr=3e-3, steps=3, min_passes=0)).run(
        model, tokenizer, data, device="cpu", on_step=lambda s: False
    )
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    assert moved and all(".layers.1." in n or ".layers.2." in n for n in moved)
    # Dropout below the updated layers turns the cache off.
    model.config.attention_dropout = 0.1
    method.prepare(model, None, forget, "cpu")
    assert method._first == 0


def test_rmu_fast_dtype_computes_in_bf16_with_retain_targets_made_the_same_way(subject):
    """fast_dtype=bfloat16: the cached frozen outputs are stored in float32, and the parent's retain
    activations are computed from them exactly as the retain term computes the candidate's, so the
    retain term starts at exactly 0 (not at the rounding between two precisions); the forget term is
    close to float32's; the weights stay float32."""
    model, tokenizer = load_model(subject.model_dir)
    data = UnlearnData(subject.forget, subject.retain, subject.fmt)
    exact = RMU(RMUConfig(layer=2, layers=(1, 2), min_passes=0, fast_dtype="float32"))
    fast = RMU(RMUConfig(layer=2, layers=(1, 2), min_passes=0, fast_dtype="bfloat16"))
    assert exact.fast_dtype("cpu") is None and fast.fast_dtype("cpu") is torch.bfloat16
    assert RMU().fast_dtype("cpu") is (torch.bfloat16 if native_bf16("cpu") else None)
    forget = fast.forget_items(tokenizer, data)
    exact.forget_items(tokenizer, data)
    exact.prepare(model, None, forget, "cpu")
    fast.prepare(model, None, forget, "cpu")
    assert fast._retain_in is not None and all(t.dtype is torch.float32 for t in fast._retain_in)
    assert fast._retain_in[0].shape == exact._retain_in[0].shape
    batch = collate(forget[:4], pad_id_of(tokenizer))
    retain_batch = collate(fast._retain_items[:4], pad_id_of(tokenizer))
    model.train()
    assert float(fast.retain_loss(model, None, retain_batch).detach()) == 0.0
    f_fast, f_exact = (float(m.forget_loss(model, batch).detach()) for m in (fast, exact))
    assert f_fast == pytest.approx(f_exact, rel=0.02)
    fast.run(model, tokenizer, data, device="cpu", on_step=lambda s: False)
    assert all(p.dtype is torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="fast_dtype"):
        RMUConfig.from_overrides({"fast_dtype": "float16"})


def test_rmu_refuses_a_steered_layer_below_every_updated_layer(subject):
    """Steering layer 0 while only the top layer may change: no weight moves the steered activations, so
    the run is refused with a clear error instead of failing inside autograd."""
    model, _ = load_model(subject.model_dir, "cpu")
    method = get_method("rmu").from_overrides({"layer": 0, "layers": [-1]})
    with pytest.raises(ValueError, match="rmu steers layer 0 but updates only layers"):
        method.prepare(model, None, [], "cpu")


def test_the_step_budget_grows_with_the_forget_set_when_passes_are_set():
    cfg = RMUConfig()
    # rmu's defaults: 20 steps at least, and at least 12 passes over the forget prompts (batch 4).
    assert (cfg.steps, cfg.min_passes, cfg.batch_size, cfg.early_stop) == (20, 12.0, 4, False)
    assert cfg.total_steps(6) == 20  # 6 facts: 12 passes are 18 steps
    assert cfg.total_steps(20) == 60  # 20 facts: 12 passes
    assert RMUConfig(min_passes=0).total_steps(20) == 20
    assert get_method("npo").from_overrides({"steps": 5}).config.total_steps(1000) == 5  # off by default
