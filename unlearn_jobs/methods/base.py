"""The unlearning-method seam: the `UnlearningMethod` ABC, its config base, and the registry that picks one by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from unlearn_jobs.config import OverridableConfig
from unlearn_jobs.data import ExampleSet, PromptFormat


@dataclass(frozen=True)
class MethodConfig(OverridableConfig):
    """Hyperparameters every method has; each method's config subclasses this with its own defaults."""

    lr: float = 1e-5
    steps: int = 50
    batch_size: int = 4
    max_length: int = 128
    # Decoder layers to update (negative counts from the top); None = the method's default.
    layers: tuple[int, ...] | None = None
    # Which weights inside those layers move: "all" | "mlp" | "mlp_down" | "attn".
    params: str = "all"
    seed: int = 0
    # Early stopping: measure forget leakage every `check_every` steps and stop once the gate holds.
    check_every: int = 5
    early_stop: bool = True

    def validate(self) -> None:
        if not (self.lr > 0 and self.lr < 10):
            raise ValueError("lr must be in (0, 10)")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_length < 8:
            raise ValueError("max_length must be >= 8")
        if self.check_every < 1:
            raise ValueError("check_every must be >= 1")
        if self.params not in ("all", "mlp", "mlp_down", "attn"):
            raise ValueError("params must be one of all, mlp, mlp_down, attn")


@dataclass(frozen=True)
class UnlearnData:
    """What a method trains on: the forget set and the retain set (may be empty)."""

    forget: ExampleSet
    retain: ExampleSet
    fmt: PromptFormat = PromptFormat()


@dataclass(frozen=True)
class StepInfo:
    step: int
    total_steps: int
    loss: float
    forget_loss: float
    retain_loss: float
    phase: str = "unlearn"


# Called after every optimisation step; returning True stops the method (early stop or cancel).
StepCallback = Callable[[StepInfo], bool]


@dataclass(frozen=True)
class MethodRun:
    steps: int
    stopped_early: bool
    last_loss: float


M = TypeVar("M", bound="UnlearningMethod")


class UnlearningMethod(ABC):
    """One way to remove facts from weights; subclasses set `name`, `config_cls` and implement `run`.

    >>> method = get_method("npo").from_overrides({"lr": "2e-5"})
    >>> method.run(model, tokenizer, UnlearnData(forget, retain), device=device, on_step=lambda s: False)
    """

    name: ClassVar[str]
    config_cls: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, config: MethodConfig | None = None) -> None:
        config = config if config is not None else self.config_cls()
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config

    @classmethod
    def from_overrides(cls: type[M], overrides: Mapping[str, Any] | None = None) -> M:
        return cls(cls.config_cls.from_overrides(overrides))

    @abstractmethod
    def run(self, model: Any, tokenizer: Any, data: UnlearnData, *, device: Any, on_step: StepCallback) -> MethodRun:
        """Update `model` in place; call `on_step` after each step and stop when it returns True."""


_REGISTRY: dict[str, type[UnlearningMethod]] = {}


def register(cls: type[M]) -> type[M]:
    """Class decorator: make a method available by its `name`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} has no method name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"method {name!r} is already registered by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    import unlearn_jobs.methods  # noqa: F401  (its __init__ imports and registers the built-in methods)


def get_method(name: str) -> type[UnlearningMethod]:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown unlearning method {name!r}; available: {available_methods()}") from None


def available_methods() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)
