"""The stage outputs as Airflow assets: what links the DAGs, one partition key at a time.

Cheap to import: DAG files import it at parse time.
"""

from __future__ import annotations

import re

from airflow.sdk import Asset

from crosschannel.core.config import get_config


def _asset(name: str, *parts: str, layout: str = "") -> Asset:
    """A stage output as an asset. Its URI names the dataset, not the deployment's storage root: assets keep
    their identity when a deployment moves its root (Airflow deactivates a name registered under a second
    URI); the physical location is in the asset's extra: a folder that exists once the stage ran, and where a
    dataset is kept per model below it, the `layout` under the storage root."""
    folder = re.split(r"/[^/]*<", layout)[0] if layout else "/".join(parts)  # above the first placeholder
    extra = {"location": f"{get_config().storage.url}/{folder}", **({"layout": layout} if layout else {})}
    return Asset(name=f"crosschannel.{name}", uri=f"crosschannel://{'/'.join(parts)}", group="crosschannel",
                 extra=extra)


def landing_dms() -> Asset:
    return _asset("landing.dms", "landing", "manifests", "dms")


def landing_segment() -> Asset:
    return _asset("landing.segment", "landing", "segment", get_config().segment.source_id)


def trusted() -> Asset:
    return _asset("trusted", "trusted")


def features() -> Asset:
    return _asset("features.customer", "features", "customer")


def models() -> Asset:
    return _asset("models", "ml", "registry", layout="ml/<model>/registry/vNNNN/")


def scores() -> Asset:
    return _asset("scores", "ml", "scores", layout="ml/<model>/scores/dt=<day>/")


def activation() -> Asset:
    return _asset("activation", "activation")


def readouts() -> Asset:
    return _asset("readouts", "reports", "readouts", layout="reports/dt=<day>/readouts/")
