"""The handoff's words, as the standards spell them: FHIR ``Task.status``, BSeR/360X business statuses and their
codes, the two parties and the moves they make.

Apart from the lifecycle (:mod:`.handoff`) so that what only needs the words (the CLI's help, the checks of what
someone typed) does not load the rules and pydantic with them.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ACTIONS", "BSER_CODES", "PARTIES", "Action", "BusinessStatus", "Party", "TaskStatus"]

TaskStatus = Literal[
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "cancelled",
]
BusinessStatus = Literal[
    "created",
    "accepted",
    "declined",
    "event-scheduled",
    "no-show",
    "event-cancelled",
    "event-completed",
    "cancellation-requested",
    "fulfillment-cancelled",
    "fulfillment-completed",
]
Party = Literal["sender", "receiver"]
PARTIES: tuple[str, ...] = get_args(Party)
Action = Literal[
    "send",
    "receive",
    "accept",
    "decline",
    "schedule",
    "no-show",
    "keep",
    "cancel-visit",
    "return-outcome",
    "hold",
    "resume",
    "fail",
    "cancel",
]
ACTIONS: tuple[str, ...] = get_args(Action)

#: BSeR ``TaskBusinessStatusCS`` code and display for each business status (harmonized with IHE 360X).
BSER_CODES: dict[str, tuple[str, str]] = {
    "created": ("2.0", "Service Request Created"),
    "accepted": ("3.0", "Service Request Accepted"),
    "declined": ("4.0", "Service Request Declined"),
    "event-scheduled": ("5.1.1", "Service Request Event Scheduled"),
    "no-show": ("5.1.2", "Scheduled Service Request Event Unattended"),
    "event-cancelled": ("5.1.3", "Scheduled Service Request Event Cancelled"),
    "event-completed": ("5.1.4", "Service Request Event Completed"),
    "cancellation-requested": ("5.2", "Service Request Cancellation Requested"),
    "fulfillment-cancelled": ("6.0", "Service Request Fulfillment Cancelled"),
    "fulfillment-completed": ("7.0", "Service Request Fulfillment Completed"),
}
