"""The toolbox toolset: one read-only tool, one that needs approval, one that escalates."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.db.models import F
from pydantic import BaseModel, Field

from agents.prompts import prompt_register
from agents.registry import (
    Check,
    Escalate,
    Preparation,
    ProposalType,
    Tool,
    ToolContext,
    ToolError,
    Toolset,
    toolset_register,
)
from agents.services.errors import InvalidTransition
from tests.toolbox.models import Shipment, Widget

status_changes: list[tuple[int, str]] = []


class LookupWidget(BaseModel):
    name: str = Field(description="The widget's name.")


class ShipWidget(BaseModel):
    name: str = Field(description="The widget's name.")
    quantity: int = Field(gt=0, le=100, description="How many to ship.")
    address: str = Field(min_length=3, description="Where to ship them.")


class EscalateToHuman(BaseModel):
    reason: str = Field(min_length=3)


def lookup_widget(context: ToolContext, value: LookupWidget) -> dict:
    widget = Widget.objects.filter(name=value.name).first()
    if widget is None:
        raise ToolError(f"No widget named {value.name!r}.")
    return {"name": widget.name, "stock": widget.stock}


def ship_widget(context: ToolContext, value: ShipWidget) -> dict:
    with transaction.atomic():
        widget = Widget.objects.select_for_update().filter(name=value.name).first()
        if widget is None:
            raise ToolError(f"No widget named {value.name!r}.")
        shipment, created = Shipment.objects.get_or_create(
            idempotency_key=context.idempotency_key,
            defaults={"widget": widget, "quantity": value.quantity, "address": value.address},
        )
        if created:
            if widget.stock < value.quantity:
                raise ToolError(f"Only {widget.stock} {widget.name} in stock.")
            Widget.objects.filter(pk=widget.pk).update(stock=F("stock") - value.quantity)
    return {"shipment": shipment.pk, "quantity": shipment.quantity, "address": shipment.address}


def ship_widget_check(context: ToolContext) -> Preparation:
    value = context.value
    widget = Widget.objects.filter(name=value.name).first()
    stock = widget.stock if widget else 0
    return Preparation(
        checks=[
            Check("widget exists", widget is not None, value.name, hard=True),
            Check("in stock", stock >= value.quantity, f"{stock} in stock", hard=True),
            Check("small order", value.quantity <= 5, f"{value.quantity} requested"),
        ],
        note=f"{stock} {value.name} in stock before this shipment.",
    )


def ship_widget_authorize(context: ToolContext, user) -> None:
    if context.value.quantity > context.tool_call.input_proposed["quantity"]:
        raise InvalidTransition("A reviewer may lower the quantity Claude proposed, not raise it.")


def ship_widget_summary(context: ToolContext) -> str:
    value = context.value
    return f"{value.quantity} × {value.name} to {value.address}"


def escalate_to_human(context: ToolContext, value: EscalateToHuman) -> Escalate:
    return Escalate(reason=value.reason)


def register() -> None:
    prompt_register(name="toolbox", version=1, template="prompts/toolbox/v1.txt")
    prompt_register(name="toolbox", version=2, template="prompts/toolbox/v2.txt")
    toolset = Toolset(
        name="toolbox",
        label="Warehouse",
        prompt="toolbox",
        replay_dir=str(Path(__file__).parent / "replays"),
        on_status_change=lambda run: status_changes.append((run.pk, run.status)),
    )
    toolset.add(Tool("lookup_widget", "Look up a widget's stock.", LookupWidget, lookup_widget))
    toolset.add(
        Tool(
            "ship_widget",
            "Ship widgets to an address. A person approves every shipment.",
            ShipWidget,
            ship_widget,
            proposal=ProposalType(
                permission="toolbox.approve_shipment",
                check=ship_widget_check,
                authorize=ship_widget_authorize,
                summary=ship_widget_summary,
                lock=lambda context: context.value.name,
            ),
            idempotent=True,
        )
    )
    toolset.add(
        Tool("escalate_to_human", "Hand over to a person.", EscalateToHuman, escalate_to_human)
    )
    toolset_register(toolset)
