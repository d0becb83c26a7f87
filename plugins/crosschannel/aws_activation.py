"""Deprecated path, kept for one release: triggers deferred before the stage packages are stored under
`crosschannel.aws_activation.ActivationJobTrigger`. New ones name crosschannel.wiring.aws.triggers."""

from crosschannel.wiring.aws.triggers import ActivationJobTrigger

__all__ = ["ActivationJobTrigger"]
