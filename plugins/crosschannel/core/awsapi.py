"""A strict check of an AWS request against the installed botocore service model: what boto3 checks before sending
(types, required members) and what only AWS checks on its side (enums, `pattern`, length and range limits), so a
value AWS would refuse fails here, naming the service, operation, member and the rule.

Patterns are matched unanchored, as the models' Smithy definition specifies (most carry their own ^ and $).
A value `${Operation.Field}` is a placeholder the sender fills from an earlier answer (a job id): its type is
checked, its pattern is not.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from crosschannel.core.errors import DataError

PLACEHOLDER = re.compile(r"^\$\{\w+\.\w+\}$")


class AwsRequestError(DataError, ValueError):
    """A request AWS would refuse; the message names the service, operation and every problem."""


@functools.cache
def _model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@functools.cache
def _pattern(text: str) -> re.Pattern | None:
    """The shape's pattern as a Python regex (None for the few Java-only constructs Python cannot compile)."""
    try:
        return re.compile(text)
    except re.error:
        return None


def check(service: str, operation: str, params: dict, *, strict: bool = True) -> dict:
    """Raise AwsRequestError unless `params` is a request AWS accepts. With strict=False only what boto3 itself
    refuses (types, required members) raises, and AWS's own rules come back as `refused`: the local target keeps
    its requests, whose ARNs and file:// locations AWS would not take, and says so. Returns the API version and
    `refused`."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    model = _model(service)
    shape = model.operation_model(operation).input_shape
    try:
        validate_parameters(params, shape)
    except ParamValidationError as exc:
        raise AwsRequestError(f"{service} {operation}: the request does not match the API: "
                              f"{str(exc).replace(chr(10), ' ')}") from None
    refused: list[str] = []
    _walk(shape, params, operation, refused)
    if refused and strict:
        raise AwsRequestError(f"{service} {operation}: AWS would refuse the request: {'; '.join(refused)}")
    return {"api_version": model.api_version, "refused": refused}


def request(service: str, operation: str, params: dict) -> dict:
    """The request as the bundle records and sends it ({"service", "operation", "params", "api_version"}), checked
    (`check`): strictly on the aws target; on the local target what AWS would refuse (empty ARNs, file://
    locations) is kept with it as `aws_would_refuse`."""
    from crosschannel.core.config import get_config

    checked = check(service, operation, params, strict=get_config().target == "aws")
    made = {"service": service, "operation": operation, "params": params, "api_version": checked["api_version"]}
    return {**made, "aws_would_refuse": checked["refused"]} if checked["refused"] else made


def _walk(shape, value: Any, where: str, problems: list[str]) -> None:
    meta, kind = shape.metadata, shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                _walk(shape.members[name], member, f"{where}.{name}", problems)
    elif kind == "list" and isinstance(value, list):
        _limits(len(value), meta, where, "items", problems)
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{where}[{index}]", problems)
    elif kind == "map" and isinstance(value, dict):
        _limits(len(value), meta, where, "entries", problems)
        for key, item in value.items():
            _walk(shape.key, key, f"{where} key {key!r}", problems)
            _walk(shape.value, item, f"{where}[{key!r}]", problems)
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} is not one of {shape.enum}")
        if PLACEHOLDER.match(value):
            return
        _limits(len(value), meta, where, "characters", problems)
        pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.search(value):
            problems.append(f"{where}: {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        _limits(value, meta, where, "", problems)


def _limits(size, meta: dict, where: str, unit: str, problems: list[str]) -> None:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and size < low:
        problems.append(f"{where}: {size} {unit} is below the minimum {low}".replace("  ", " "))
    if high is not None and size > high:
        problems.append(f"{where}: {size} {unit} is above the maximum {high}".replace("  ", " "))
