"""The text form of an admission filter (``[upload] admission``), parsed into an :class:`AdmissionSpec`."""

from __future__ import annotations

from dataclasses import dataclass

from streamfeat.encoders.admission._bloom import CountingBloomAdmission, check_bloom_n
from streamfeat.encoders.admission._poisson import PoissonInclusion, check_poisson_p
from streamfeat.encoders.admission._process import PoissonProcessAdmission, check_process

__all__ = ["AdmissionFilter", "AdmissionSpec", "parse_admission_spec"]

AdmissionFilter = PoissonInclusion | CountingBloomAdmission | PoissonProcessAdmission


@dataclass(frozen=True, slots=True)
class AdmissionSpec:
    """A validated admission filter form: ``kind`` (poisson, bloom, process), its numbers
    (``p``; ``n``; ``k`` and ``horizon``) and the ``text`` it was read from."""

    kind: str
    text: str
    p: float = 0.0
    n: int = 0
    k: int = 0
    horizon: float = 0.0

    def build(self, *, seed: int = 0) -> AdmissionFilter:
        """Return a fresh filter of this form, seeded with ``seed``."""
        if self.kind == "poisson":
            return PoissonInclusion(self.p, seed=seed)
        if self.kind == "bloom":
            return CountingBloomAdmission(self.n, seed=seed)
        return PoissonProcessAdmission(self.k, self.horizon, seed=seed)


def parse_admission_spec(text: str) -> AdmissionSpec:
    """Parse ``poisson P``, ``bloom N`` or ``process K HORIZON``.

    >>> parse_admission_spec("bloom 3")
    AdmissionSpec(kind='bloom', text='bloom 3', p=0.0, n=3, k=0, horizon=0.0)

    Raises:
        ValueError: naming what was wrong with ``text``.
    """
    words = text.split() if isinstance(text, str) else []
    try:
        if len(words) == 2 and words[0] == "poisson":
            return AdmissionSpec("poisson", text, p=check_poisson_p(float(words[1])))
        if len(words) == 2 and words[0] == "bloom":
            return AdmissionSpec("bloom", text, n=check_bloom_n(int(words[1])))
        if len(words) == 3 and words[0] == "process":
            k, horizon = int(words[1]), float(words[2])
            check_process(k, horizon)
            return AdmissionSpec("process", text, k=k, horizon=horizon)
    except ValueError as exc:
        msg = f"{text!r}: {exc}"
        raise ValueError(msg) from exc
    msg = f"{text!r} is not an admission filter (poisson P | bloom N | process K HORIZON)"
    raise ValueError(msg)
