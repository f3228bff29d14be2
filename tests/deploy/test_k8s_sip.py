"""The SIP door's Kubernetes component (issue 60, ``k8s/components/sip``), rendered through the
``cpu-dev-sip`` overlay: its objects validate against Kubernetes' schemas; the SIP Service carries
UDP and TCP on the SIP port with ``externalTrafficPolicy: Local`` (the caller's own address reaches
the pod); its NetworkPolicy admits that port and exactly the RTP range the server is given, from the
networks the server allows, and lets the pod send to those networks only; and its settings parse
into the server's ``Settings``."""

from __future__ import annotations

import os

import pytest

from tests.deploy.helpers import ENV_PREFIX, objects, one, render, server_container
from translate_svc.settings import Settings

pytestmark = pytest.mark.unit

OVERLAY = "cpu-dev-sip"


def sip_env() -> dict[str, str]:
    env = server_container(render(OVERLAY))["env"]
    return {e["name"]: e["value"] for e in env if e["name"].startswith(ENV_PREFIX + "SIP__") and "value" in e}


def test_the_sip_overlay_validates_against_kubernetes_schemas() -> None:
    import kubernetes_validate

    for version in ("1.30.0", kubernetes_validate.latest_version()):
        for o in render(OVERLAY):
            if o["kind"] == "PodMonitor":
                continue
            kubernetes_validate.validate(o, version, strict=True)


def test_the_sip_service_and_policy_carry_the_sip_port_and_the_rtp_range_the_server_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objs = render(OVERLAY)
    for k in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(k)
    for k, v in sip_env().items():
        monkeypatch.setenv(k, v)
    sip = Settings().sip  # the component's values parse
    assert sip.port == 5060 and sip.rtp_ports is not None
    service = one(objs, "Service", "translate-svc-sip")
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {(5060, "UDP"), (5060, "TCP")}
    policy = one(objs, "NetworkPolicy", "translate-svc-sip")
    [rule] = policy["spec"]["ingress"]
    assert [b["ipBlock"]["cidr"] for b in rule["from"]] == sip.allowed_cidrs
    ports = {(p["port"], p.get("endPort"), p["protocol"]) for p in rule["ports"]}
    assert ports == {(5060, None, "UDP"), (5060, None, "TCP"), (sip.rtp_ports[0], sip.rtp_ports[1], "UDP")}
    container = server_container(objs)
    assert {(p["containerPort"], p["protocol"]) for p in container["ports"]} >= {(5060, "UDP"), (5060, "TCP")}
    [out] = policy["spec"]["egress"]  # our RTP, BYE and responses: to the same networks only
    assert [b["ipBlock"]["cidr"] for b in out["to"]] == sip.allowed_cidrs
    assert len(objects(objs, "NetworkPolicy")) == 2  # the base's (clients, monitoring) stays as it was
