"""The Axis MQTT event bridge message on ``alerts.axis`` (docs/formats.md 2.1).

Validation only: the timestamp stays raw here because bridges disagree on its
form, and the decoder turns it into device milliseconds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

#: What an item of ``message.source`` / ``message.data`` may hold.
AxisScalar = StrictStr | StrictBool | StrictInt | StrictFloat


class AxisMessageBody(BaseModel):
    """``message``: the event's source and data items."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source: dict[str, AxisScalar]
    data: dict[str, AxisScalar] = Field(min_length=1)


class AxisMessage(BaseModel):
    """One event as the device (or a bridge) publishes it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: StrictStr = Field(min_length=1)
    timestamp: Any
    message: AxisMessageBody
    serial: StrictStr | None = None
    serial_number: StrictStr | None = Field(default=None, alias="serialNumber")
    serial_number_snake: StrictStr | None = Field(default=None, alias="serial_number")
    operation: StrictStr | None = None
    property_operation: StrictStr | None = Field(default=None, alias="PropertyOperation")

    @property
    def payload_serial(self) -> str | None:
        """The first non-blank serial the payload names."""
        for value in (self.serial, self.serial_number, self.serial_number_snake):
            if value is not None and value.strip():
                return value
        return None

    @property
    def operation_name(self) -> str | None:
        return self.operation if self.operation is not None else self.property_operation
