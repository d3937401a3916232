"""Unlearning methods, registered by name: grad_diff, npo, simnpo, rmu, edit."""

from unlearn_jobs.methods import edit, grad_diff, npo, rmu, simnpo  # noqa: F401  (registration side effect)
from unlearn_jobs.methods.base import (
    MethodConfig,
    MethodRun,
    StepInfo,
    UnlearnData,
    UnlearningMethod,
    available_methods,
    get_method,
    register,
)

__all__ = [
    "MethodConfig",
    "MethodRun",
    "StepInfo",
    "UnlearnData",
    "UnlearningMethod",
    "available_methods",
    "get_method",
    "register",
]
