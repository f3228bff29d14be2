"""The HTTP port's connection budget (issue 52): at the cap, the longest-waiting connection of the
address with the most connections waiting is closed for a newcomer; a connection serving a request
never is; a newcomer is refused only when every connection serves one."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from translate_svc.transport.http.site import Connection, ConnectionBudget

pytestmark = pytest.mark.unit


def _conn(peer: str) -> Connection:
    return Connection(peer, cast(asyncio.Transport, None), asyncio.Protocol())


def _admit(budget: ConnectionBudget, peer: str) -> Connection:
    """Let a connection of ``peer`` in as the site does: what ``admit`` names is closed first."""
    verdict = budget.admit()
    assert verdict is not False
    if verdict is not True:
        budget.remove(verdict)
    conn = _conn(peer)
    budget.add(conn)
    return conn


def test_the_address_with_the_most_waiting_pays_for_a_newcomer_its_longest_waiting_first() -> None:
    budget = ConnectionBudget(4)
    flood = [_admit(budget, "10.0.0.1") for _ in range(3)]
    _admit(budget, "10.0.0.2")
    assert (budget.open, budget.waiting) == (4, 4)
    # at the cap: each newcomer, of either address, closes the flooder's longest-waiting
    assert budget.admit() is flood[0]
    _admit(budget, "10.0.0.1")
    assert budget.admit() is flood[1]
    _admit(budget, "10.0.0.2")
    # now 10.0.0.1 and 10.0.0.2 wait two each: the one that had two first pays again
    assert budget.admit() is flood[2]
    budget.remove(flood[2])
    # left: the flooder's newest, and both of 10.0.0.2 (whose first never paid)
    assert (budget.open, budget.waiting, budget.admit()) == (3, 3, True)


def test_a_connection_serving_a_request_is_never_closed_and_a_full_cap_of_them_refuses() -> None:
    budget = ConnectionBudget(2)
    a, b = _admit(budget, "10.0.0.1"), _admit(budget, "10.0.0.1")
    for conn in (a, b):  # what the middleware does while a handler runs
        budget.serve(conn)
    assert budget.waiting == 0 and budget.admit() is False  # refused: nothing waits
    budget.served(b)  # its request answered, it waits for the next (keep-alive)
    assert budget.admit() is b
    budget.remove(b)
    budget.remove(b)  # again: nothing
    assert (budget.open, budget.waiting, budget.admit()) == (1, 0, True)
