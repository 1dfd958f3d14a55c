"""`ShutdownConfig`: the plan's switches, or a whole pipeline in TOML, checked by the Rust config.

The switches build ``halt -> cancel -> verify -> flush -> close`` (the compact form of the TOML
language); ``ShutdownConfig.from_toml(path)`` takes any pipeline the language can say. Either way
the text is validated by the same code as every other node's, and every problem is raised at once,
each naming where it is, the field and the value.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field

from nautilus_shutdown import _native

#: Raised for a configuration that cannot run (a ``ValueError``).
ShutdownConfigError = _native.ConfigError

# Python's level names, as the pipeline's `log_level` spells them.
_LEVELS = {
    "TRACE": "trace",
    "DEBUG": "debug",
    "INFO": "info",
    "WARN": "warn",
    "WARNING": "warn",
    "ERROR": "error",
}


def _toml_value(value: object) -> str:
    """A TOML literal for a Python value (a wrong type stays wrong, for the config to name)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(float(value)) if isinstance(value, float) else str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


@dataclass(frozen=True)
class ShutdownConfig:
    """How a node shuts down.

    The fields are the plan's switches (with its defaults); ``report_path`` adds the report file.
    A config read with :meth:`from_toml` holds that file's pipeline instead; its switches are
    ``None`` (the file's ``[[steps]]`` say what runs).
    """

    timeout_secs: float | None = 30.0
    cancel_orders: bool | None = True
    verify_stop_losses: bool | None = True
    flush_cache: bool | None = True
    log_level: str | None = "INFO"
    report_path: str | None = None
    _toml: str | None = field(default=None, repr=False, compare=True)
    _source: str = field(default="ShutdownConfig", repr=False, compare=False)

    def __post_init__(self) -> None:
        _native.check_config(self.to_toml(), self._source)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> ShutdownConfig:
        """The pipeline of a TOML file (the whole language: ``[[steps]]``, ``[metrics]``...).

        Raises ``ShutdownConfigError`` naming the file, the step and the key of every problem,
        and ``OSError`` when the file cannot be read.
        """
        source = os.fspath(path)
        with open(source, encoding="utf-8") as f:
            text = f.read()
        return cls(
            timeout_secs=None,
            cancel_orders=None,
            verify_stop_losses=None,
            flush_cache=None,
            log_level=None,
            report_path=None,
            _toml=text,
            _source=source,
        )

    @property
    def source(self) -> str:
        """What errors name: the TOML file, or ``ShutdownConfig``."""
        return self._source

    def to_toml(self, trader_id: str | None = None) -> str:
        """The pipeline as TOML text; ``trader_id`` is added when the text does not set one."""
        if self._toml is not None:
            text = self._toml
        else:
            level = self.log_level
            if isinstance(level, str):
                level = _LEVELS.get(level.upper(), level)
            switches = {
                "timeout_secs": self.timeout_secs,
                "cancel_orders": self.cancel_orders,
                "verify_stop_losses": self.verify_stop_losses,
                "flush_cache": self.flush_cache,
                "log_level": level,
                "report_path": self.report_path,
            }
            text = "".join(
                f"{key} = {_toml_value(value)}\n"
                for key, value in switches.items()
                if value is not None
            )
        if trader_id is not None and not _sets_trader_id(text):
            text = f"trader_id = {_toml_value(trader_id)}\n{text}"
        return text


def _sets_trader_id(text: str) -> bool:
    try:
        return "trader_id" in tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        # The config itself says what is wrong with the text.
        return True
