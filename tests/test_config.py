from __future__ import annotations

import pytest

from crosschannel.core.config import BUNDLE_ROOT, ConfigError, load_config
from tests.conftest import AWS_ENV

AWS = {**AWS_ENV, "CROSSCHANNEL__STORAGE__ROOT": "s3://bucket/prefix",
       "CROSSCHANNEL__SEGMENT__LOGS_URI": "s3://segment-bucket/segment-logs",
       "CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN": "arn:aws:dms:us-east-1:123456789012:task:ABCDEF"}


def test_defaults_resolve_relative_paths_against_the_bundle():
    cfg = load_config(environ={})

    assert cfg.target == "local"
    assert cfg.storage.url == (BUNDLE_ROOT / ".data").as_uri()
    assert cfg.source.sqlalchemy_url == f"sqlite:///{BUNDLE_ROOT}/.data/source/retail.db"


def test_environment_overrides_nested_keys_with_types():
    cfg = load_config(environ={**AWS, "CROSSCHANNEL__AWS__GLUE__NUMBER_OF_WORKERS": "10"})

    assert cfg.target == "aws"
    assert cfg.storage.url == "s3://bucket/prefix"
    assert cfg.aws.glue.number_of_workers == 10


def test_config_file_can_be_replaced(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("target: local\nstorage:\n  root: file:///srv/data\n")

    cfg = load_config(environ={"CROSSCHANNEL_CONFIG": str(path)})

    assert cfg.storage.url == "file:///srv/data"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CROSSCHANNEL__TARGET": "gcp"}, "target: Input should be 'local' or 'aws'"),
        ({"CROSSCHANNEL__STORAGE__ROOT": "gs://bucket"}, "storage.root: unsupported location 'gs://bucket'"),
        ({**AWS, "CROSSCHANNEL__STORAGE__ROOT": "/tmp/x"}, "storage.root: must be an s3:// URL when target is 'aws'"),
        ({**AWS, "CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN": ""}, "aws.dms.replication_task_arn: required"),
        (
            {"CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN": "task-1"},
            "aws.dms.replication_task_arn: String should match",
        ),
        ({"CROSSCHANNEL__AWS__REGION": "mars"}, "aws.region: String should match"),
        ({"CROSSCHANNEL__SOURCE__URL": "mysql://db/retail"}, "source.url: String should match"),
        ({**AWS, "CROSSCHANNEL__SEGMENT__LOGS_URI": "/var/segment"}, "segment.logs_uri: must be an s3:// URL"),
        ({"CROSSCHANNEL__AWS__GLUE__WORKER_TYPE": "huge"}, "aws.glue.worker_type: Input should be"),
        ({"CROSSCHANNEL__GENERATOR__CUSTOMERS": "ten"}, "generator.customers: Input should be a valid integer"),
        ({"CROSSCHANNEL__STORAGE__TYPO": "1"}, "storage.typo: Extra inputs are not permitted"),
        # issue 13: keys the aws target needs failed only inside AWS
        ({**AWS, "CROSSCHANNEL__AWS__GLUE__ROLE_ARN": ""}, "aws.glue.role_arn: '' is not an IAM role ARN"),
        ({**AWS, "CROSSCHANNEL__AWS__GLUE__SCRIPT_LOCATION": "run_sql.py"},
         "aws.glue.script_location: 'run_sql.py' is not the s3:// URL of include/glue/run_sql.py"),
        ({**AWS, "CROSSCHANNEL__AWS__SAGEMAKER__ROLE_ARN": "sagemaker"}, "aws.sagemaker.role_arn: 'sagemaker' is not"),
        ({**AWS, "CROSSCHANNEL__AWS__REGION": "eu-west-1"},
         "aws.sagemaker.image_uri: the image is in us-east-1, aws.region is eu-west-1"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(environ, message):
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)

    assert message in str(caught.value)


def test_unreadable_or_malformed_files_are_named(tmp_path):
    missing = tmp_path / "missing.yaml"
    broken = tmp_path / "broken.yaml"
    broken.write_text("target: [local\n")

    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read it"):
        load_config(missing, environ={})
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(broken, environ={})


def test_dms_files_are_valid_for_the_dms_api():
    """The S3 endpoint settings and table mappings the aws target needs pass the DMS API model, strictly, and the
    start request each run sends does too."""
    import datetime as dt
    import json

    from crosschannel.core import awsapi, dms

    cfg = load_config(environ={})
    settings = json.loads(cfg.dms.settings_path.read_text())
    mappings = cfg.dms.table_mappings_path.read_text()
    arn = "arn:aws:dms:us-east-1:123456789012:{}:ABC"

    awsapi.check("dms", "CreateEndpoint", {  # strictly: the shipped CompressionType "NONE" was not in the enum
        "EndpointIdentifier": "landing", "EndpointType": "target", "EngineName": "s3",
        "S3Settings": {**settings, "BucketName": "lake", "BucketFolder": "data/landing/dms"}})
    awsapi.check("dms", "CreateReplicationTask", {
        "ReplicationTaskIdentifier": "retail", "SourceEndpointArn": arn.format("endpoint"),
        "TargetEndpointArn": arn.format("endpoint"), "ReplicationInstanceArn": arn.format("rep"),
        "MigrationType": "full-load-and-cdc", "TableMappings": mappings})
    awsapi.check("dms", "StartReplicationTask", {
        "ReplicationTaskArn": arn.format("task"), "StartReplicationTaskType": "resume-processing",
        "CdcStopPosition": dms.cdc_stop_position(dt.date(2026, 11, 2))})
    rules = json.loads(mappings)["rules"]
    assert {r["object-locator"]["schema-name"] for r in rules} == {cfg.source.schema_name}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"CROSSCHANNEL__STORAGE__ROOT": ""}, r"storage\.root: must not be empty"),
        ({"CROSSCHANNEL__STORAGE__ROOT": "s3://"}, r"storage\.root: 's3://' names no bucket"),
        ({"CROSSCHANNEL__SEGMENT__LOGS_URI": " "}, r"segment\.logs_uri: must not be empty"),
        ({"CROSSCHANNEL__SCHEDULE__START_DATE": "2026-13-45"}, r"schedule\.start_date: '2026-13-45' is not a calendar"),
        ({"CROSSCHANNEL__GENERATOR__START_PARTITION": "2026-02-30"}, r"generator\.start_partition: '2026-02-30'"),
        ({"CROSSCHANNEL__ALERTS__DEADLINE_MINUTES": "{retail_ingest: 120}"},
         r"deadline_minutes: replaced by alerts\.deadlines, a promise per DAG such as"),
        ({"CROSSCHANNEL__ALERTS__DEADLINES__CAMPAIGN_READOUT": "D+1 7:00"},
         r"deadlines\.campaign_readout: 'D\+1 7:00' is not a promise of the form 'D\+1 07:00'"),
    ],
)
def test_values_that_would_break_the_dags_or_the_data_are_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ=override)


def test_a_storage_root_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "root"
    file.write_text("")

    with pytest.raises(ConfigError, match=r"storage\.root: '.*root' is a file: expected a folder"):
        load_config(environ={"CROSSCHANNEL__STORAGE__ROOT": str(file)})


def test_a_missing_sqlite_source_is_an_error_not_a_new_empty_database(tmp_path):
    from crosschannel.core import source

    path = tmp_path / "nowhere" / "retail.db"
    with pytest.raises(FileNotFoundError, match=r"source DB .*retail\.db does not exist \(source\.url\)"):
        source.connect(f"sqlite:///{path}")
    assert not path.exists() and not path.parent.exists()

    source.connect(f"sqlite:///{path}", create=True).dispose()  # the generator and the CSV import create it
    assert path.parent.is_dir()


def test_pinpoint_is_off_by_default():
    """Pinpoint's engagement APIs reached end of support on 2026-10-30: a fresh deployment does not call them."""
    assert load_config(environ={}).activation.pinpoint.enabled is False
    cfg = load_config(environ={**AWS, "CROSSCHANNEL__ACTIVATION__PINPOINT__ENABLED": "false",
                               "CROSSCHANNEL__ACTIVATION__PINPOINT__APPLICATION_ID": ""})
    assert cfg.activation.pinpoint.enabled is False  # and then needs no Pinpoint project
