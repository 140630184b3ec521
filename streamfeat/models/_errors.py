"""The error a model file or its declaration is refused with."""

from __future__ import annotations

from streamfeat.errors import ConfigError

__all__ = ["ModelError"]


class ModelError(ConfigError):
    """Raised when a model is refused at load: missing or corrupt file, or a file whose inputs
    differ from their declaration (name, dtype, shape or fields).

    Attributes:
        model: the model's name (its ``[models.NAME]``).
        input: the input concerned, when the error is about one.
    """

    def __init__(
        self,
        model: str,
        reason: str,
        *,
        input: str | None = None,
        file: str | None = None,
        key: str | None = None,
    ) -> None:
        self.model = model
        self.input = input
        self.detail = reason
        where = f"model {model!r}" + (f": input {input!r}" if input is not None else "")
        super().__init__(f"{where}: {reason}", file=file, key=key)

    def located(self, *, file: str | None, key: str | None) -> ModelError:
        """Return the same error, placed in a file at a key (the tasks file loading it)."""
        return ModelError(self.model, self.detail, input=self.input, file=file, key=key or self.key)
