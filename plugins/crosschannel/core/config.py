"""Typed deployment configuration: include/crosschannel.yaml plus CROSSCHANNEL__* environment overrides.

Loaded lazily and cached (`get_config()`); reading it touches only the local file system, so DAG files
may call it at parse time. A bad value fails with a message naming the key and what is allowed.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crosschannel.core.alert_settings import Alerts
from crosschannel.core.readout_settings import Readouts
from crosschannel.core.source_settings import FEATURE_NEEDS, NEEDS, Sources

BUNDLE_ROOT = Path(__file__).resolve().parents[3]
IAM_ROLE = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}"
DEFAULT_CONFIG_FILE = BUNDLE_ROOT / "include" / "crosschannel.yaml"
ENV_PREFIX = "CROSSCHANNEL__"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what is allowed."""


def _calendar_day(value: str) -> str:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar day (YYYY-MM-DD)") from None
    return value


Day = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_calendar_day)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Storage(_Section):
    root: str = ".data"
    conn_id: str = "aws_default"

    _check_root = field_validator("root")(lambda value: _as_url(value) and value)

    @property
    def url(self) -> str:
        """The root as a URL: file:///absolute/path or s3://bucket/prefix (no trailing slash)."""
        return _as_url(self.root)


class Source(_Section):
    url: str = Field("sqlite:///.data/source/retail.db", pattern=r"^(sqlite|postgresql)(\+\w+)?://")
    schema_name: str = Field("retail", alias="schema", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @property
    def sqlalchemy_url(self) -> str:
        """SQLite URLs with a relative path are resolved against the bundle root."""
        prefix = "sqlite:///"
        if self.url.startswith(prefix) and not self.url.startswith(prefix + "/"):
            rest = self.url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str(BUNDLE_ROOT / rest)
        return self.url


class Segment(_Section):
    source_id: str = Field("retail-web", pattern=r"^[A-Za-z0-9_.-]+$")
    logs_uri: str = ".data/segment-logs"
    allow_empty_day: bool = False

    _check_logs_uri = field_validator("logs_uri")(lambda value: _as_url(value) and value)

    @property
    def logs_url(self) -> str:
        return _as_url(self.logs_uri)


class Dms(_Section):
    settings_file: str = "include/dms/s3-target-settings.json"
    table_mappings_file: str = "include/dms/table-mappings.json"

    @property
    def settings_path(self) -> Path:
        return BUNDLE_ROOT / self.settings_file

    @property
    def table_mappings_path(self) -> Path:
        return BUNDLE_ROOT / self.table_mappings_file


class AwsDms(_Section):
    replication_task_arn: Annotated[str, Field(pattern=r"^(|arn:aws[a-z-]*:dms:[a-z0-9-]+:\d{12}:task:\S+)$")] = ""


class AwsGlue(_Section):
    role_arn: str = ""
    job_name: str = "crosschannel-sql"
    script_location: str = ""  # s3:// path of include/glue/run_sql.py as deployed
    glue_version: Literal["5.0"] = "5.0"
    worker_type: Literal["G.1X", "G.2X", "G.4X", "G.8X", "G.025X"] = "G.1X"
    number_of_workers: int = Field(2, ge=2, le=1000)
    # Runs of the one generic job at once: a DAG maps its SQL steps (7 merges and the identity map, 5 audiences)
    # onto it in parallel, and Glue refuses a run over the job's MaxConcurrentRuns (ConcurrentRunsExceeded).
    max_concurrent_runs: int = Field(16, ge=1, le=1000)


class AwsSageMaker(_Section):
    role_arn: str = ""
    instance_type: str = Field("ml.m5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    # The SageMaker XGBoost framework image of the region (script mode; crosschannel.core.sagemaker.IMAGES):
    image_uri: str = Field("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
                           pattern=r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[\w.-]+:[\w.-]+$")
    model_package_group: str = Field("crosschannel", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class Aws(_Section):
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    conn_id: str = "aws_default"
    bucket: str = ""
    dms: AwsDms = AwsDms()
    glue: AwsGlue = AwsGlue()
    sagemaker: AwsSageMaker = AwsSageMaker()


class Generator(_Section):
    seed: int = 42
    customers: int = Field(20000, ge=100)
    stores: int = Field(25, ge=1)
    products: int = Field(800, ge=10)
    history_days: int = Field(540, ge=30)
    event_history_days: int = Field(35, ge=1)
    start_partition: Day = "2026-11-01"


class Range(_Section):
    """A hyperparameter's search range: SageMaker's IntegerParameterRanges / ContinuousParameterRanges."""
    kind: Literal["integer", "continuous"]
    min: float
    max: float
    scaling: Literal["Auto", "Linear", "Logarithmic"] = "Auto"

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class ModelSpec(_Section):
    """One propensity model: its label column (customer_features.sql), the days its window needs, and what a label
    of 1 means in that window (`positive`: a purchase, or none), as customer_features.sql defines the label; the
    backtest derives the outcomes after a cutoff from the last two."""
    label: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    horizon_days: int = Field(ge=1, le=365)
    positive: Literal["purchase", "no_purchase"] = "purchase"
    description: str = ""


DEFAULT_FEATURES = ("recency_days", "orders_lifetime", "order_days_lifetime", "frequency_7d", "frequency_14d",
    "frequency_30d", "monetary_30d", "frequency_60d", "frequency_90d", "monetary_90d", "frequency_180d",
    "monetary_180d", "frequency_365d", "monetary_365d", "observed_days", "days_since_first_order", "interval_mean_days",
    "interval_std_days", "interval_max_days", "interval_last_days", "recency_ratio", "order_rate",
    "expected_orders_since_last", "frequency_trend_90d", "spend_trend_90d", "store_share_365d", "web_share_365d",
    "app_share_365d", "discount_share_365d", "returns_90d", "refunds_90d", "tenure_days", "top_category_share_365d")


class Models(_Section):
    specs: dict[str, ModelSpec] = {
        "churn": ModelSpec(label="churn_90d", horizon_days=90, positive="no_purchase",
                           description="no purchase in the next 90 days"),
        "repurchase": ModelSpec(label="repurchase_30d", horizon_days=30, description="a purchase in the next 30 days")}
    features: tuple[str, ...] = DEFAULT_FEATURES
    as_of_step_days: int = Field(14, ge=1)
    train_as_of_days: int = Field(4, ge=1)
    min_history_days: int = Field(56, ge=0)  # of order history before every as-of day of a split (datasets.py)
    max_trials: int = Field(6, ge=1, le=500)
    max_parallel_trials: int = Field(2, ge=1)
    max_rounds: int = Field(300, ge=10)
    early_stopping_rounds: int = Field(20, ge=1)
    ranges: dict[str, Range] = {
        "max_depth": Range(kind="integer", min=3, max=8), "min_child_weight": Range(kind="continuous", min=1, max=50),
        "eta": Range(kind="continuous", min=0.05, max=0.3, scaling="Logarithmic"),
        "lambda": Range(kind="continuous", min=0.1, max=10, scaling="Logarithmic"),
        "subsample": Range(kind="continuous", min=0.6, max=1.0),
        "colsample_bytree": Range(kind="continuous", min=0.5, max=1.0)}
    promotion_margin: float = Field(0.005, ge=0)
    psi_limit: float = Field(0.25, gt=0)
    seed: int = 7


class Pinpoint(_Section):
    enabled: bool = False  # Pinpoint's engagement APIs ended 2026-10-30 (README: migration); on where it still runs
    application_id: str = ""               # the Pinpoint project (aws target)
    role_arn: str = ""                     # the role Pinpoint assumes to read the import files
    max_file_mb: int = Field(900, ge=1, le=1000)  # an import file stays under Pinpoint's 1 GB limit


class CustomerProfiles(_Section):
    enabled: bool = True
    domain_name: str = Field("crosschannel", pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    data_expiry_days: int = Field(30, ge=1, le=1098)


class Personalize(_Section):
    enabled: bool = True
    role_arn: str = ""
    interactions_dataset_arn: str = ""
    items_dataset_arn: str = ""
    users_dataset_arn: str = ""
    dataset_group_arn: str = ""  # the datasets' group: solutions, filters and batch jobs (recommendations) use it
    min_interactions: int = Field(1000, ge=1)       # Personalize's minimum for a load, and for an incremental one
    min_users: int = Field(25, ge=1)                # users with at least min_user_interactions each
    min_user_interactions: int = Field(2, ge=1)


class SegmentTraits(_Section):
    enabled: bool = True
    conn_id: str = "segment_default"       # host = the API host, password = the source's write key
    upload_size: int = Field(100, ge=1, le=2500)
    max_queue_size: int = Field(10000, ge=100)
    max_retries: int = Field(10, ge=0)
    timeout_seconds: int = Field(15, ge=1)
    probability_digits: int = Field(2, ge=1, le=6)  # traits change only when a rounded probability does


class Activation(_Section):
    # The control group per audience (a stable hash of audience and customer id), never sent; the YAML explains
    # skip_unready_destinations (a destination whose precondition fails is skipped instead of failing the run).
    holdout_percent: float = Field(10, ge=0, lt=100)
    skip_unready_destinations: bool = False
    poll_interval_seconds: float = Field(30, ge=0)
    poll_timeout_minutes: float = Field(120, gt=0)
    pinpoint: Pinpoint = Pinpoint()
    customer_profiles: CustomerProfiles = CustomerProfiles()
    personalize: Personalize = Personalize()
    segment: SegmentTraits = SegmentTraits()


class Recommendations(_Section):
    # Amazon Personalize solutions (aws) or the local recommender (crosschannel.stages.recommendations): trained
    # weekly by propensity_training, run daily for the audiences' members by audience_activation.
    enabled: bool = True
    per_member: int = Field(3, ge=1, le=10)  # items delivered per member (the batch jobs' numResults)
    exclude_bought_days: int = Field(30, ge=1, le=365)  # the filter: nothing bought in these days
    online_stores: list[int] = []  # stores whose stock ships online; empty: every store's
    promotion_metric: Literal["normalized_discounted_cumulative_gain_at_10",
                              "precision_at_10"] = "normalized_discounted_cumulative_gain_at_10"
    promotion_tolerance: float = Field(0.0, ge=0, le=1)  # a new version may be this much worse and still replace


class Schedule(_Section):
    # The first day the time-scheduled DAGs (retail_ingest daily, propensity_training weekly) run on their own.
    # Before it, days only run through backfills or by hand: install, backfill the history, then let it run.
    start_date: Day = "2026-11-01"


class Config(_Section):
    target: Literal["local", "aws"] = "local"
    storage: Storage = Storage()
    source: Source = Source()
    sources: Sources = Sources()
    segment: Segment = Segment()
    dms: Dms = Dms()
    aws: Aws = Aws()
    generator: Generator = Generator()
    models: Models = Models()
    activation: Activation = Activation()
    recommendations: Recommendations = Recommendations()
    schedule: Schedule = Schedule()
    alerts: Alerts = Alerts()
    readouts: Readouts = Readouts()

    def features(self) -> tuple[list[str], dict[str, str]]:
        """The features models train on (models.features with a declared source), and the others with why."""
        reasons = {name: self.sources.missing(FEATURE_NEEDS.get(name, ()), f"feature {name}")
                   for name in self.models.features}
        return [name for name, why in reasons.items() if not why], {name: why for name, why in reasons.items() if why}

    def runs(self, part: str) -> bool:
        """Whether a destination (activation.<part>) or the recommendations run: enabled, and every source they
        need declared (NEEDS)."""
        section = self.recommendations if part == "recommendations" else getattr(self.activation, part)
        return section.enabled and not self.sources.missing(NEEDS[part], part)

    @model_validator(mode="after")
    def _aws_target_is_complete(self) -> Config:
        if self.target != "aws":
            return self
        if not self.storage.url.startswith("s3://"):
            raise ValueError("storage.root: must be an s3:// URL when target is 'aws'")
        if not self.segment.logs_url.startswith("s3://"):
            raise ValueError("segment.logs_uri: must be an s3:// URL (Segment's S3 destination) when target is 'aws'")
        if not self.aws.dms.replication_task_arn:
            raise ValueError("aws.dms.replication_task_arn: required when target is 'aws' (a DMS task ARN)")
        role, script = (IAM_ROLE, "an IAM role ARN"), (r"s3://[^/]+/.+\.py", "the s3:// URL of include/glue/run_sql.py")
        for key, (pattern, expected) in {"aws.glue.role_arn": role, "aws.sagemaker.role_arn": role,
                                         "aws.glue.script_location": script}.items():
            value = functools.reduce(getattr, key.split("."), self)
            if not re.fullmatch(pattern, value):
                raise ValueError(f"{key}: {value!r} is not {expected} (required when target is 'aws')")
        image_region = re.search(r"\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws", self.aws.sagemaker.image_uri)[1]
        if image_region != self.aws.region:
            raise ValueError(f"aws.sagemaker.image_uri: the image is in {image_region}, aws.region is "
                             f"{self.aws.region}: SageMaker pulls images of its own region only")
        required = {"pinpoint": ("application_id", "role_arn"),
                    "personalize": ("role_arn", "interactions_dataset_arn", "items_dataset_arn", "users_dataset_arn")}
        for destination, keys in required.items():
            section = getattr(self.activation, destination)
            for key in (key for key in keys if self.runs(destination) and not getattr(section, key)):
                raise ValueError(f"activation.{destination}.{key}: required when target is 'aws' and "
                                 f"activation.{destination}.enabled is true")
        for key in ("dataset_group_arn", "role_arn"):
            if self.runs("recommendations") and not getattr(self.activation.personalize, key):
                raise ValueError(f"activation.personalize.{key}: required when target is 'aws' and "
                                 "recommendations.enabled is true (solutions, filters and batch jobs use it)")
        return self


def _as_url(location: str) -> str:
    """A folder as a URL; an empty location, an S3 URL without a bucket or a path that is a file is refused."""
    if not location.strip():
        raise ValueError("must not be empty: expected a folder path, file:// or s3://bucket/prefix")
    if location.startswith("s3://"):
        if not location.removeprefix("s3://").split("/")[0]:
            raise ValueError(f"{location!r} names no bucket: expected s3://bucket/prefix")
        return location.rstrip("/")
    if "://" in location and not location.startswith("file://"):
        raise ValueError(f"unsupported location {location!r}: expected a path, file:// or s3://")
    path = Path(location.removeprefix("file://"))
    path = (path if path.is_absolute() else BUNDLE_ROOT / path).resolve()
    if path.is_file():
        raise ValueError(f"{location!r} is a file: expected a folder")
    if location.startswith("file://"):
        return location.rstrip("/")
    return path.as_uri()


def _env_overrides(environ: dict[str, str]) -> dict:
    overrides: dict = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        node = overrides
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name}: {'.'.join(keys)} is not a section")
        # a list or mapping is written inline, as in the YAML file: CROSSCHANNEL__ALERTS__ONCALL='[smtp, slack]'
        node[keys[-1]] = yaml.safe_load(value) if value.lstrip().startswith(("[", "{")) else value
    return overrides


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read, merge and validate the configuration (uncached: use `get_config()` in the pipeline)."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(path or environ.get("CROSSCHANNEL_CONFIG") or DEFAULT_CONFIG_FILE)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"crosschannel config {path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"crosschannel config {path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"crosschannel config {path}: expected a mapping at the top level")
    try:
        return Config.model_validate(_merge(raw, _env_overrides(environ)))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message}" if key else message)
        where = f"crosschannel config {path} (with CROSSCHANNEL__* overrides)"
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None


@functools.cache
def get_config() -> Config:
    """The process-wide configuration, loaded on first use."""
    return load_config()
