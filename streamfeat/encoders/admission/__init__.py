"""Feature admission for id-valued fields: which item / category ids leave the device verbatim.

Three filters, all seedable, of bounded memory, with ``dump() -> bytes`` and
:func:`load_admission` so the agent keeps their state in its store
(``Store.put_state(key, filter.dump())``):

* :class:`PoissonInclusion`: admit with probability ``p`` per sighting (mean ``1 / p``).
* :class:`CountingBloomAdmission`: admit at the ``n``-th sighting.
* :class:`PoissonProcessAdmission`: admit by a draw on the probability of reaching ``k``
  sightings within a horizon, from the id's estimated rate.

Encoders send a refused id as its hashed bucket; decoders show it as ``"#b:<bucket>"``.
"""

from __future__ import annotations

from streamfeat.encoders.admission._bloom import CountingBloomAdmission
from streamfeat.encoders.admission._common import unpack_state
from streamfeat.encoders.admission._poisson import PoissonInclusion
from streamfeat.encoders.admission._process import PoissonProcessAdmission, reach_probability
from streamfeat.encoders.admission._spec import AdmissionFilter, AdmissionSpec, parse_admission_spec
from streamfeat.errors import DecodeError

__all__ = [
    "AdmissionFilter",
    "AdmissionSpec",
    "CountingBloomAdmission",
    "PoissonInclusion",
    "PoissonProcessAdmission",
    "load_admission",
    "parse_admission",
    "parse_admission_spec",
    "reach_probability",
]

_KINDS: dict[str, type[AdmissionFilter]] = {
    "poisson": PoissonInclusion,
    "bloom": CountingBloomAdmission,
    "process": PoissonProcessAdmission,
}


def load_admission(data: bytes) -> AdmissionFilter:
    """Rebuild the filter whose ``dump()`` gave ``data`` (it continues exactly where it stopped).

    Raises:
        DecodeError: ``data`` is not admission state, or is corrupt.
    """
    kind, _, _ = unpack_state(data)
    cls = _KINDS.get(kind)
    if cls is None:
        msg = f"admission state kind {kind!r} is unknown"
        raise DecodeError(msg)
    return cls.load(data)


def parse_admission(text: str, *, seed: int = 0) -> AdmissionFilter:
    """Build a filter from its text form (for a tasks-file key such as ``[upload] admission``).

    ``poisson P`` (admit with probability P per sighting), ``bloom N`` (admit at the N-th
    sighting), ``process K HORIZON`` (admit by the chance of reaching K sightings within
    HORIZON steps).

    >>> parse_admission("bloom 3", seed=1)
    CountingBloomAdmission(n=3, seed=1, cells=1048576, hashes=4)

    Raises:
        ValueError: naming what was wrong with ``text``.
    """
    return parse_admission_spec(text).build(seed=seed)
