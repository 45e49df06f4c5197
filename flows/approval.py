"""The approval form: what a person fills in the Prefect UI to promote a challenger, or not."""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import Field


class Approval(RunInput):
    """The form a person fills in the Prefect UI to promote a challenger, or not.

    `approve` and `approver` have no default: an empty submit is refused and the run keeps
    waiting, rather than a default deciding for nobody."""

    approve: bool = Field(description="Promote this challenger to @champion?")
    reason: str = Field("", max_length=1000, description="Why; kept with the version and in "
                                                         "the promotion record.")
    approver: str = Field(min_length=1, max_length=200, description="Your name.")
