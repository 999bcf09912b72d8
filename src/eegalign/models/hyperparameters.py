"""Each encoder's hyperparameters, read from its constructor: name, type, preset values, doc line.

Nothing here is written by hand per model: the names and types come from
``inspect.signature(cls.__init__)``, the values from ``cls.presets`` and the one-line documentation
from the ``Args:`` section of the class docstring (the braindecode contract that
tests/test_models.py enforces). ``eegalign fit --help`` and ``eegalign models NAME`` both print
from :func:`hyperparameters`, so they cannot disagree with the code or with each other.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from eegalign.models.base import EncoderBase

#: constructor arguments every encoder shares; ``n_chans``, ``n_times``, ``out_shape`` come from the data
CONTRACT = ("n_chans", "n_times", "out_shape", "preset")
#: how ``eegalign fit`` sets one hyperparameter
FIT_FLAG = "--model.encoder.init_args.{name}"


@dataclass(frozen=True)
class Hyperparameter:
    """One constructor hyperparameter of an encoder.

    Args:
        name: the keyword argument's name (e.g. ``n_heads``).
        type: its annotation without ``| None`` (None means "take the preset's value"), e.g. ``int``.
        presets: the value in each preset, default preset first.
        doc: the docstring's ``Args:`` entry, on one line.
    """

    name: str
    type: str
    presets: dict[str, Any]
    doc: str

    @property
    def default(self) -> Any:
        """The value used when the flag is not given: the default preset's."""
        return next(iter(self.presets.values()))

    @property
    def flag(self) -> str:
        return FIT_FLAG.format(name=self.name)


def hyperparameters(cls: type[EncoderBase]) -> list[Hyperparameter]:
    """The hyperparameters of encoder class ``cls`` in constructor order (the shared contract excluded)."""
    docs = _arg_docs(inspect.getdoc(cls) or "")
    order = [cls.default_preset, *(p for p in cls.presets if p != cls.default_preset)]
    out = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in CONTRACT:
            continue
        presets = {p: cls.presets[p].get(name) for p in order}
        out.append(Hyperparameter(name, _type_name(param.annotation), presets, docs.get(name, "")))
    return out


def _type_name(annotation: Any) -> str:
    """``"int | None"`` (or the evaluated type) -> ``"int"``."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    parts = [p.strip() for p in text.split("|") if p.strip() not in ("None", "NoneType")]
    return " | ".join(parts) or "None"


def _arg_docs(doc: str) -> dict[str, str]:
    """``Args:`` section of a Google-style docstring -> {argument: its text joined on one line}."""
    docs: dict[str, str] = {}
    current = None
    in_args = False
    for line in doc.splitlines():
        if line.strip() == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        entry = re.match(r"^ {4}(\w+): ?(.*)$", line)
        if entry:
            current = entry.group(1)
            docs[current] = entry.group(2).strip()
        elif current and line.startswith("        ") and line.strip():
            docs[current] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):  # the next section ("Returns:", prose)
            break
    return docs


def format_encoder(cls: type[EncoderBase]) -> str:
    """One encoder's block for ``eegalign fit --help``: how to choose it, then two lines per hyperparameter.

    Lines are not wrapped here (the help formatter wraps each one to the terminal's width).
    """
    presets = [cls.default_preset, *(p for p in cls.presets if p != cls.default_preset)]
    lines = [
        f"eegalign.models.{cls.__name__} ({cls.name}): {(inspect.getdoc(cls) or '').splitlines()[0]}",
        f"  {FIT_FLAG.format(name='preset')}: str = {presets[0]}  (one of: {', '.join(presets)})",
    ]
    for h in hyperparameters(cls):
        others = ", ".join(f"{p}: {v!r}" for p, v in list(h.presets.items())[1:])
        lines.append(f"  {h.flag}: {h.type} = {h.default!r}" + (f"  ({others})" if others else ""))
        lines.append(f"      {h.doc}")
    return "\n".join(lines)


def encoders_help(classes: list[type[EncoderBase]]) -> str:
    """The ``eegalign fit --help`` epilog: every encoder in ``classes`` and its hyperparameters."""
    head = (
        "Encoder hyperparameters (read from each constructor). Choose an encoder with --model.encoder CLASS "
        "and set a hyperparameter with --model.encoder.init_args.NAME VALUE; one left unset takes the "
        "preset's value, shown as `TYPE = value in the default preset  (value in the other presets)`. "
        "n_chans, n_times and out_shape come from the data."
    )
    return "\n\n".join([head, *(format_encoder(cls) for cls in classes)])
