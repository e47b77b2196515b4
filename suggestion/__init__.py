"""Suggestion algorithms behind one small interface (``Algorithm``) and one registry.

>>> from suggestion import get_algorithm, algorithm_names
>>> sorted(algorithm_names())[:2]
['grid', 'random']
"""

from ._base import (
    ACTIVE_STATES,
    CHECKPOINT_FROM_LABEL,
    COMPLETED_STATES,
    Algorithm,
    Assignment,
    Setting,
    TrialView,
)
from ._early_stopping import ASHA, Curve, EarlyStopper, LiveMedianStop, MedianStop
from ._es_kube import kube_trial_stopper
from ._registry import algorithm_names, early_stopping_names, get_algorithm, get_early_stopper
from ._service import RemoteAlgorithm, serve

__all__ = [
    "ACTIVE_STATES",
    "ASHA",
    "CHECKPOINT_FROM_LABEL",
    "COMPLETED_STATES",
    "Curve",
    "EarlyStopper",
    "LiveMedianStop",
    "MedianStop",
    "RemoteAlgorithm",
    "Algorithm",
    "Assignment",
    "Setting",
    "TrialView",
    "algorithm_names",
    "early_stopping_names",
    "get_algorithm",
    "get_early_stopper",
    "serve",
    "kube_trial_stopper",
]
