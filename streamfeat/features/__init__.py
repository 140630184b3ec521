"""Built-in features (SPEC section 4): ``ipv`` and ``exposure``, and the engine's feature stage."""

from __future__ import annotations

from streamfeat.features._stage import FeatureStage, FeatureState
from streamfeat.features.exposure import ExposureFeature
from streamfeat.features.ipv import IpvFeature

__all__ = ["ExposureFeature", "FeatureStage", "FeatureState", "IpvFeature"]
