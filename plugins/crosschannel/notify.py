"""Deprecated path, kept for one release: Deadline Alerts of runs recorded before the stage packages name their
callback `crosschannel.notify.deadline_missed`. New DAG versions name crosschannel.wiring.notify."""

from crosschannel.wiring.notify import FailureNotifier, deadline_missed

__all__ = ["FailureNotifier", "deadline_missed"]
