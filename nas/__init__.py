"""Neural architecture search: Katib's ``nasConfig`` search spaces, ENAS' controller, the
ENAS child networks and the DARTS supernet, in PyTorch (torch is imported only by the
modules that need it)."""

from typing import TYPE_CHECKING, Any

from ._space import (
    DARTS_OPERATIONS,
    OPERATION_PARAMETERS,
    NasOperation,
    NasSpace,
    katib_text,
    parse_katib_text,
    validate_nas_config,
)

if TYPE_CHECKING:
    from ._controller import ControllerSettings, EnasLearner

__all__ = [
    "DARTS_OPERATIONS",
    "OPERATION_PARAMETERS",
    "ControllerSettings",
    "EnasLearner",
    "NasOperation",
    "NasSpace",
    "katib_text",
    "parse_katib_text",
    "validate_nas_config",
]


def __getattr__(name: str) -> Any:
    if name in ("ControllerSettings", "EnasLearner", "Controller"):
        from . import _controller

        return getattr(_controller, name)
    raise AttributeError(name)
