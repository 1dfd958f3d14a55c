"""What a node role may raise, and what the runner makes of it.

A role method of an adapter raises one of these to say whether a retry may help; any other
exception is taken as a rejection and named in the report with its type.
"""

from __future__ import annotations


class RoleTransient(Exception):
    """A failure that may pass on retry (a timeout, a lost connection)."""


class RoleRateLimited(Exception):
    """The venue pushed back for its rate limit: retried after a pause."""


class RoleRejected(Exception):
    """The venue or the node refused; retrying will not help."""


class RoleUnsupported(Exception):
    """The node cannot do this at all."""
