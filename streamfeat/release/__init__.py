"""Releases of tasks and models to fleets: bundles, the model matrix, grading and rollout.

Pure and synchronous (no I/O, no clock reads): the endpoint keeps releases and serves bundle
bytes; the agent verifies, caches and switches to them. See docs/release.md.
"""

from __future__ import annotations

from streamfeat.release._auth import AuthError, authorization, parse_authorization, verify
from streamfeat.release._bundle import (
    MAGIC,
    Bundle,
    BundleHeader,
    build_archive,
    files_from_dir,
    public_key_bytes,
    read_header,
    sign_bundle,
    verify_bundle,
)
from streamfeat.release._grading import DEFAULT_GRADING, GradeReport, Grading, parse_grading
from streamfeat.release._matrix import ANY, Matrix, parse_matrix
from streamfeat.release._pull import Announcement, Pull
from streamfeat.release._rollout import (
    HealthReport,
    HealthThresholds,
    Release,
    ReleaseState,
    ReleaseStateError,
    Transition,
    bucket,
    evaluate,
    in_rollout,
    parse_thresholds,
)

__all__ = [
    "ANY",
    "DEFAULT_GRADING",
    "MAGIC",
    "Announcement",
    "AuthError",
    "Bundle",
    "BundleHeader",
    "GradeReport",
    "Grading",
    "HealthReport",
    "HealthThresholds",
    "Matrix",
    "Pull",
    "Release",
    "ReleaseState",
    "ReleaseStateError",
    "Transition",
    "authorization",
    "bucket",
    "build_archive",
    "evaluate",
    "files_from_dir",
    "in_rollout",
    "parse_authorization",
    "parse_grading",
    "parse_matrix",
    "parse_thresholds",
    "public_key_bytes",
    "read_header",
    "sign_bundle",
    "verify",
    "verify_bundle",
]
