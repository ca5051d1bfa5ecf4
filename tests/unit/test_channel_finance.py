"""The `finance` channel: finance's commands on the ledger read as events of the hub's own (PAY-2, ING-9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhub.channels import get_channel
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.finance import CHANNEL, FORMAT
from orderhub.clock import FixedClock
from orderhub.intake import IntakeQueue, accept_webhook
from orderhub.lifecycle.machine import hub_order_id
from orderhub.mapping import OrderNotFound, apply_to_store
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import MethodClass, MoneyKind, MoneyState, OrderEvent
from orderhub.payments.ledger import line_of
from orderhub.store.orders import InMemoryOrderStore

ORDER_ID = hub_order_id("mall", "M20261201001")
AT = "2026-12-01T10:30:00+08:00"


def command(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "format": FORMAT, "command": "record_transfer", "command_id": "4f1c2a9e-0c1d-4d1e-9a55-1b2c3d4e5f60",
        "order_id": ORDER_ID, "kind": "payment", "provider": "bank", "reference": "CMB20261201000042",
        "amount": 129900, "currency": "CNY", "method": "bank_transfer", "occurred_at": AT,
        "reason": "statement 2026-12-01 line 42", "actor": "ops-token",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def parse_one(body: dict[str, Any] | bytes, rules: FieldRules | None = None) -> OrderEvent:
    (event,) = CHANNEL.parse(body if isinstance(body, bytes) else raw(body), rules=rules or FieldRules())
    return event


def test_it_is_registered_and_has_no_webhook():
    assert get_channel("finance") is CHANNEL and CHANNEL.push is False
    request = InboundRequest("finance", {}, raw(command()), "203.0.113.9")
    with pytest.raises(Unauthorized):
        CHANNEL.authenticate(request, ChannelSettings(secrets=["x"]), datetime(2026, 12, 1, tzinfo=UTC))

    class NoQueue(IntakeQueue):
        def send(self, message: IntakeMessage) -> None:
            raise AssertionError("nothing may be queued")

    # Posted to the webhook route, a finance command is the same 404 as a channel that does not exist.
    result = accept_webhook(request, "r1", lambda name: ChannelSettings(secrets=["x"]), NoQueue(""),
                            FixedClock(datetime(2026, 12, 1, 3, tzinfo=UTC)))
    assert (result.reply.status_code, result.rejection) == (404, "unknown channel")


def test_a_recorded_transfer_is_a_pending_bank_transfer_of_the_order_named_by_hub_id():
    event = parse_one(command())
    assert (event.source, event.reporter, event.event_id, event.channel_code) == (
        "finance", "finance", "4f1c2a9e-0c1d-4d1e-9a55-1b2c3d4e5f60", "record_transfer")
    # Named by hub id only: the mapper can find the order, never create one.
    assert (event.order_id, event.channel_order_id, event.kinds) == (ORDER_ID, "", ())
    (fact,) = event.money
    assert (fact.provider, fact.kind, fact.reference, fact.state, fact.method) == (
        "bank", MoneyKind.PAYMENT, "CMB20261201000042", MoneyState.PENDING, MethodClass.BANK_TRANSFER)
    assert (fact.amount, fact.currency, fact.cumulative) == (129900, "CNY", False)
    assert (fact.note, fact.actor) == ("statement 2026-12-01 line 42", "ops-token")
    assert event.event_time == fact.occurred_at == datetime.fromisoformat(AT)
    # The command itself travels with the record as its payload.
    assert json.loads(fact.payload)["command_id"] == event.event_id
    assert line_of(fact).record_id == "bank:payment:CMB20261201000042#pending@2026-12-01T02:30:00.000+00:00"


def test_an_order_named_by_channel_and_number_is_still_found_by_hub_id_only():
    event = parse_one(command(order_id=None, order={"channel": "mall", "channel_order_id": "M20261201001"}))
    assert (event.order_id, event.channel, event.channel_order_id) == (ORDER_ID, "mall", "")


def test_a_finance_command_never_creates_an_order():
    store = InMemoryOrderStore()
    event = parse_one(command())
    message = IntakeMessage.wrap("finance", "2026-12-01T03:00:00.000+00:00", "r", "", {}, raw(command()))
    with pytest.raises(OrderNotFound):
        apply_to_store(event, message, store, FixedClock(datetime(2026, 12, 1, 3, tzinfo=UTC)), ledger=store)
    assert store.orders == {} and store.records == {}


@pytest.mark.parametrize(("command_name", "state"), [("confirm", MoneyState.CONFIRMED),
                                                     ("reverse", MoneyState.REVERSED)])
def test_confirm_and_reverse_report_the_same_entry_in_their_state(command_name, state):
    pending = parse_one(command()).money[0]
    later = parse_one(command(command=command_name, command_id=f"{command_name}-1",
                              occurred_at="2026-12-02T09:00:00+08:00")).money[0]
    assert later.state is state
    assert line_of(later).entry_id == line_of(pending).entry_id == "bank:payment:CMB20261201000042"


def test_a_credit_sale_is_recorded_under_provider_credit():
    fact = parse_one(command(method="credit", provider="credit", reference="HT-2026-118")).money[0]
    assert (fact.provider, fact.method) == ("credit", MethodClass.CREDIT)


def test_confirming_a_providers_entry_keeps_its_provider_method_and_cumulative():
    fact = parse_one(command(command="confirm", provider="alipay", kind="refund", method="online",
                             reference="2026120122001400001#R1", payment_reference="2026120122001400001",
                             cumulative=True)).money[0]
    assert (fact.provider, fact.method, fact.cumulative, fact.payment_reference) == (
        "alipay", MethodClass.ONLINE, True, "2026120122001400001")


REFUSED = [
    (command(amount=None), "amount"),
    (command(amount=0), "amount"),
    (command(amount=-100), "amount"),
    (command(amount=10**12 + 1), "amount"),
    (command(amount="129900"), "amount"),
    (command(amount=True), "amount"),
    (command(currency="cny"), "currency"),
    (command(currency="CNYY"), "currency"),
    (command(currency=None), "currency"),
    (command(reason=None), "reason"),
    (command(reason="   "), "reason is required"),
    (command(reason="x" * 201), "reason"),
    (command(reason="line 1\nline 2"), "control characters"),
    (command(actor=None), "actor"),
    (command(command="cancel"), "command"),
    (command(format="orderhub.finance/2"), "format"),
    (command(order_id=None), "name the order"),
    (command(order={"channel": "mall", "channel_order_id": "M1"}), "name the order"),
    (command(order_id="oh_NOT-A-HUB-ID"), "order_id"),
    (command(method="online"), "bank transfer or a sale on credit"),
    (command(provider="wechatpay"), "provider 'bank'"),
    (command(cumulative=True), "never cumulative"),
    (command(occurred_at="2026-12-01 10:30:00"), "occurred_at"),
    (command(kind="chargeback"), "kind"),
    (command(reference=""), "reference"),
    (command(reference="A" * 65), "reference"),
    (command(command_id="has spaces"), "command_id"),
]


@pytest.mark.parametrize(("body", "says"), REFUSED)
def test_a_bad_command_is_refused_with_its_reason(body, says):
    with pytest.raises(Malformed) as refused:
        parse_one(body)
    assert says in refused.value.reason


def test_an_amount_with_a_fraction_is_refused_never_rounded():
    body = raw(command()).replace(b'"amount":129900', b'"amount":1299.00')
    with pytest.raises(Malformed) as refused:
        parse_one(body)
    assert "amount" in refused.value.reason


@pytest.mark.parametrize(("body", "says"), [
    (b"not json", "JSON"), (b"[1, 2]", "JSON object"),
    (b'{"amount": 1, "amount": 2}', "twice"), (b'{"amount": NaN}', "NaN"),
])
def test_what_the_bounded_reader_refuses_is_refused(body, says):
    with pytest.raises(Malformed) as refused:
        CHANNEL.parse(body)
    assert says in refused.value.reason


def test_an_unknown_field_is_drift_reported_not_refused_and_not_kept():
    event = parse_one(command(approved_by="someone"))
    assert event.drift == ("approved_by",)
    assert "approved_by" not in event.money[0].payload


money_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1,
                     max_size=64).filter(lambda s: s.strip() != "")


@given(amount=st.integers(1, 10**12), reference=money_text, reason=money_text.filter(lambda s: len(s) <= 200),
       kind=st.sampled_from(["payment", "refund"]), command_name=st.sampled_from(["record_transfer", "confirm",
                                                                                   "reverse"]))
def test_a_command_reads_back_exactly_and_the_same_every_time(amount, reference, reason, kind, command_name):
    body = raw(command(amount=amount, reference=reference, reason=reason, kind=kind, command=command_name))
    first, again = parse_one(body), parse_one(body)
    # A replay re-reads the kept body: the same event, so the same record and log key.
    assert first == again
    (fact,) = first.money
    assert (fact.amount, fact.reference, fact.kind.value) == (amount, reference, kind)
    assert fact.note == reason.strip()
