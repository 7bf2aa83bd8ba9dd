"""Small helpers shared by the model builders."""
from __future__ import annotations

from ..errors import ParameterError


def require_encoder(model: str, encoder: str | None, allowed: tuple[str, ...]) -> str:
    """``encoder`` (default ``allowed[0]``) if ``model`` supports it, else a :class:`ParameterError`."""
    if encoder is None:
        return allowed[0]
    if encoder not in allowed:
        raise ParameterError(f"model {model!r} does not take encoder {encoder!r}; choose from: "
                             f"{', '.join(allowed)}")
    return encoder
