"""Rooms: one or more speakers, many listeners, each listener in its own language.

A **speaker** is an ordinary stream (any door) whose config names a room (``StreamConfig.room``);
its driver takes a seat (``seat.SpeakerSeat``), which registers it (``RoomRegistry.speak``). A
**listener** subscribes to a room in a language (``RoomRegistry.join``, through the listen driver
``session/calls/listen.py``: the gRPC door's ``Listen``, the rooms door's socket, the MCP door's captions).
Work is paid per language, not per listener: each speaker's targets are its own config's targets
plus every language someone else in the room listens in, changed (the stream's ``retarget``) as
listeners come and go, so a hundred listeners in four languages cost four decoder rows per segment.
A participant who speaks and listens is not sent its own speech, nor does its own listening add a
target to its own stream. A listener may choose a speaking rate (on a grid of 0.25, where the key it
listens with lets it: ``RoomRights.rates``, and within the room's and its tenant's caps): each
speaker's results are then spoken again at the rates in use, as optional engine work after they
are out (``session/calls/renditions.py``), and its listeners at a rate get each result once that speech
is made, in order (``listener.LaterOutput``), boundedly.

Every final result and caption a speaker's stream makes is published (``Speaker.output``, called by
its ``SegmentTracker`` as the result goes out in order) to the listeners of each language it carries,
cut down to that language (a ``RoomOutput``): the same segment ids and spans as the speaker's own
stream. Final results of the last ``backlog_s`` seconds are kept per language, as text, bounded per
room and per tenant (``backlog.py``); a listener who joins gets them at once, then live output. Each
listener has a bounded queue: one that falls behind loses its oldest events and is told how many
(``OutputDropped``) before its next one; it never slows the speaker or other listeners. A listen
lasts at most ``max_listen_s``.

Rooms are keyed by (tenant, name): tenants never share one. A room holds a slot of the node's
``max_rooms`` and of its tenant's (``rooms=`` in the tokens file, else ``max_rooms_per_tenant``)
while it has a party (a speaker or a listener); when the last one leaves its slots are released at
once, and its backlog is kept ``idle_s`` longer (a party who comes back within it, or a late
listener, gets it) unless the room is refilled or that many rooms of the tenant (or the node) wait
after it: the oldest waiting go first. Listeners are capped per tenant as rooms are
(``listeners=``, else ``max_listeners_per_tenant``). Rooms reach other workers and pods through
the cluster store (``link.py``, which also says what a lost store costs).

The modules, one job each, from the top floor down (imports point down only: a contract in
pyproject.toml keeps it so, and another keeps this package free of drivers and doors):

- ``seat.py``: ``SpeakerSeat``, a stream's side of the room it speaks into, for its driver;
- ``registry.py``: ``RoomRegistry``, every room of this process (admission, caps, the waiting
  backlogs, drain, presence), one per ``SessionManager``;
- ``rates.py``: the speaking rates listeners choose: who may, the room's and the tenants' caps;
- ``room.py``: ``Room`` (its parties, the per-language fan-out) and ``Speaker`` (retargeting, what
  its own client sees, its results spoken again at its listeners' rates);
- ``link.py``: a room across processes, through the cluster store; ``config.py``: ``RoomConfig``
  and its one mapping from ``RoomSettings``; ``checks.py``: room names, participant ids, a
  speaker's config;
- ``readers.py``: what this process reads of a room from the others (its output in a language
  while a listener here hears it), for the link;
- ``outbox.py``: a party's store calls, in order, never awaited; ``wire.py``: a room's output as
  the store carries it; ``backlog.py``: the text backlog and its bounds;
- ``listener.py``: a listener's events (``RoomOutput``, ``ListenStarted``, ...) and bounded queue.

A door renders a ``RoomOutput`` once per language and shares the bytes among its listeners from
an encoding cache of its own, keyed by the output (nothing of a door's is kept here).

Event loop only (no locks): publishing is synchronous and never awaits.
"""
