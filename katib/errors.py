"""The one exception hierarchy of the project.

Errors in the user's input are *permanent* and carry every problem found at once, each
naming the field path and the rule (``spec.parameters[1].feasibleSpace.min: must be less
than max``). Errors a retry can fix are *temporary*. The CLI and the API render the same
objects.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One broken rule: where (``path``) and what (``message``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_dict(self) -> dict[str, str]:
        return {"field": self.path, "message": self.message}


class KatibError(Exception):
    """Base of every error this project raises on purpose."""


class ValidationError(KatibError):
    """The input broke one or more rules; ``errors`` lists them all."""

    def __init__(self, errors: list[FieldError], what: str = "experiment") -> None:
        self.errors = list(errors)
        self.what = what
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid {what} ({len(self.errors)} error(s)):\n{lines}")

    def __reduce__(self) -> tuple[type[ValidationError], tuple[list[FieldError], str]]:
        # Raised in another process (a Ray task, a process pool), it arrives whole: pickled
        # from its message alone, each character came back as an error of its own.
        return ValidationError, (self.errors, self.what)


class NotFoundError(KatibError):
    """A named experiment or trial does not exist."""


class ConflictError(KatibError):
    """The request contradicts the current state (exists already, run elsewhere, …)."""


class StaleEditError(ConflictError):
    """An edit was based on a spec that another edit (another server's) has replaced since:
    read the experiment again and redo the edit."""


class NoResultError(KatibError):
    """The experiment ended, but no trial reported the objective metric: there is no
    best trial to return. The message quotes the trials' most common failure."""


class ExperimentFailedError(KatibError):
    """The experiment ended ``Failed`` (Katib's ``MaxFailedTrialsReached``: too many trials
    failed). ``result`` is what it got to, best trial included, for a caller who still
    wants it; nothing hands it over as a success."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[ExperimentFailedError], tuple[str, object]]:
        return ExperimentFailedError, (str(self), self.result)


class TemporaryError(KatibError):
    """A failure a retry can fix (a busy database, a lost connection)."""


class UnauthorizedError(KatibError):
    """No valid credentials came with the request."""


class ForbiddenError(KatibError):
    """The caller may not do this in this namespace."""


class NotAllowedError(KatibError):
    """This method (a watch, say) is not served on this resource."""


class KatibWarning(UserWarning):
    """Something done as asked that the asker should know of (serving a failed trial's
    model); the command line prints it as one ``warning:`` line."""
