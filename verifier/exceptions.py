"""The exceptions catalog-verifier raises, rooted at one class.

Driver and client errors are wrapped where the IO happens (``raise ... from``), so callers only
need to know these.
"""

from __future__ import annotations


class CatalogVerifierError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(CatalogVerifierError):
    """Raised by ``verifier.config`` when a file, key or value is invalid; names the key."""


class DatabaseError(CatalogVerifierError):
    """Raised by ``verifier.database`` when the database cannot be reached or started."""


class EmbeddedPostgresError(DatabaseError):
    """Raised by ``verifier.embedded_pg`` when the private cluster cannot be set up or started."""


class MigrationError(DatabaseError):
    """Raised by ``verifier.migrations`` when migrations cannot be applied or were edited."""


class StartupError(CatalogVerifierError):
    """Raised by the daemon when a part cannot start (e.g. a listener cannot bind)."""


class NotFound(CatalogVerifierError):
    """Raised by the stores when a merchant, product, key, sweep or verification does not exist."""


class Conflict(CatalogVerifierError):
    """Raised by the stores when the requested change conflicts with the current state."""


class InvalidInput(CatalogVerifierError):
    """Raised when input data is well-formed but not acceptable; carries per-field details."""

    def __init__(self, message: str, details: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []
