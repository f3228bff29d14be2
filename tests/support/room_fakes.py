"""What the room core's tests (``session/rooms/``: the registry, listeners, the backlog)
run it with, as plain values: a model card of five languages, a speaker's stream that records its
retargets, a fake clock, and a speaker published into a registry."""

from __future__ import annotations

from translate_svc.errors import InvalidInput
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.rooms.room import Speaker
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT
from translate_svc.types import Language, ModelCard, ModelInfo

#: a test model's card: five languages, each heard, written and spoken
CARD = ModelCard(
    info=ModelInfo(name="m", revision="r", is_test_model=True),
    languages=tuple(
        Language(c, c, speech_input=True, text_output=True, speech_output=True)
        for c in ("eng", "spa", "fra", "deu", "ita")
    ),
    num_speakers=1,
)


class FakeStream:
    """What a room needs of a speaker's stream: its retarget. ``next_id``: the first segment id a
    retarget applies to (segments before it are under way with the old targets)."""

    def __init__(self) -> None:
        self.next_id = 0
        self.calls: list[tuple[str, ...]] = []
        #: the renditions (language, rate) each retarget asked for, beside ``calls``
        self.rates: list[tuple[tuple[str, float], ...]] = []
        self.refuse: str | None = None

    def retarget(self, targets: tuple[str, ...], renditions: tuple[tuple[str, float], ...] = ()) -> int:
        if self.refuse is not None and self.refuse in targets:
            raise InvalidInput(f"cannot translate into {self.refuse}")
        self.calls.append(targets)
        self.rates.append(renditions)
        return self.next_id


class Clock:
    """A clock that stands still until the test moves ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def speaker(
    registry: RoomRegistry, stream: FakeStream, room: str = "talk", participant: str = "", own: tuple[str, ...] = ()
) -> Speaker:
    """``stream`` published into ``room`` by the default tenant, with every room's rights."""
    return await registry.publish(
        room,
        session_id=f"s-{participant or id(stream)}",
        participant=participant,
        tenant=DEFAULT_TENANT,
        rights=ALL_ROOMS,
        own=own,
        retarget=stream.retarget,
    )
