"""The stage outputs as Airflow assets: what links the DAGs, one partition key at a time.

Cheap to import: DAG files import it at parse time.
"""

from __future__ import annotations

from airflow.sdk import Asset

from crosschannel.core.config import get_config


def _asset(name: str, *parts: str) -> Asset:
    """A stage output as an asset. Its URI names the dataset, not the deployment's storage root: assets keep
    their identity when a deployment moves its root (Airflow deactivates a name registered under a second
    URI); the physical location is in the asset's extra."""
    location = "/".join([get_config().storage.url, *parts])
    return Asset(name=f"crosschannel.{name}", uri=f"crosschannel://{'/'.join(parts)}", group="crosschannel",
                 extra={"location": location})


def landing_dms() -> Asset:
    return _asset("landing.dms", "landing", "manifests", "dms")


def landing_segment() -> Asset:
    return _asset("landing.segment", "landing", "segment", get_config().segment.source_id)


def trusted() -> Asset:
    return _asset("trusted", "trusted")


def features() -> Asset:
    return _asset("features.customer", "features", "customer")


def models() -> Asset:
    return _asset("models", "ml", "registry")


def scores() -> Asset:
    return _asset("scores", "ml", "scores")


def activation() -> Asset:
    return _asset("activation", "activation")


def readouts() -> Asset:
    return _asset("readouts", "reports", "readouts")
