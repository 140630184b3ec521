"""Built-in features (SPEC section 4): ``ipv`` and ``exposure``, and the engine's feature stage."""

from __future__ import annotations

from streamfeat.features._config import (
    DEFAULT_IPV_ACTIONS,
    FEATURE_KINDS,
    FeatureConfig,
    parse_feature,
)
from streamfeat.features._stage import FeatureStage, FeatureState
from streamfeat.features.exposure import ExposureFeature
from streamfeat.features.ipv import IpvFeature

__all__ = [
    "DEFAULT_IPV_ACTIONS",
    "FEATURE_KINDS",
    "ExposureFeature",
    "FeatureConfig",
    "FeatureStage",
    "FeatureState",
    "IpvFeature",
    "parse_feature",
]
