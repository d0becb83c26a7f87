"""The models on the aws target: the raw SageMaker configs are valid requests for the SageMaker API model
(botocore's Stubber), and the provider's operators start the jobs on a moto server."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber

from crosschannel.core import awsapi, paths, storage
from crosschannel.core import sagemaker as sagemaker_jobs
from crosschannel.core.config import get_config
from crosschannel.stages.models import jobs as model_jobs
from crosschannel.stages.models import registry as model_registry
from tests.conftest import AWS_ENV, empty_bucket

DAY = dt.date(2026, 11, 2)
ROLE = "arn:aws:iam::123456789012:role/sagemaker"


@pytest.fixture
def aws_ml(moto_server, local_env, monkeypatch):
    """An S3 lake on moto holding one model's datasets, with the aws target configured for SageMaker."""

    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="lake")
    for key, value in {**AWS_ENV, "CROSSCHANNEL__AWS__SAGEMAKER__ROLE_ARN": ROLE}.items():
        monkeypatch.setenv(key, value)
    get_config.cache_clear()
    for model in get_config().models.specs:
        for split in ("train", "validation"):
            s3.put_object(Bucket="lake", Key=f"data/ml/{model}/datasets/dt={DAY}/{split}/data.csv", Body=b"1,2,3\n")
    yield s3
    empty_bucket(s3, "lake")
    get_config.cache_clear()


def _stubbed(operation: str, config: dict, response: dict) -> None:
    """Send the config through a real SageMaker client whose transport is botocore's Stubber: the client
    validates the request against the SageMaker API model before the stub answers; the strict check adds the
    patterns, lengths and ranges that only SageMaker itself enforces."""
    client = boto3.client("sagemaker", region_name="us-east-1")
    awsapi.check("sagemaker", client.meta.method_to_api_mapping[operation], config)  # AWS's own rules too
    with Stubber(client) as stub:
        stub.add_response(operation, response, config)
        getattr(client, operation)(**config)
        stub.assert_no_pending_responses()


def _tuned_training(model: str) -> dict:
    source_dir = "s3://lake/data/system/sagemaker/sourcedir.tar.gz"
    hps = {**sagemaker_jobs.static_hyperparameters(source_dir), "max_depth": "5", "eta": "0.1"}
    return sagemaker_jobs.training_config(sagemaker_jobs.job_name(model, DAY, "train"),
                                          model_jobs._channels(model, DAY), model_jobs.models_output(model, DAY), hps)


def _model_and_transform(model: str) -> tuple[dict, dict]:
    job = sagemaker_jobs.job_name(model, DAY, "train")
    artifact = f"{model_jobs.models_output(model, DAY)}/{job}/output/model.tar.gz"
    model_config = sagemaker_jobs.model_config(f"cc-{model}-v0001", artifact,
                                               "s3://lake/data/system/sagemaker/sourcedir.tar.gz")
    transform = sagemaker_jobs.transform_config(sagemaker_jobs.job_name(model, DAY, "score"), model_config["ModelName"],
                                                storage.url_of(paths.scores(model, DAY, "input")),
                                                storage.url_of(paths.scores(model, DAY, "output")), 16, 4)
    return model_config, transform


def test_every_sagemaker_config_is_a_valid_request(aws_ml):
    tuning = model_jobs.plan_tuning(DAY)

    names = [t["HyperParameterTuningJobName"] for t in tuning]
    assert names == ["churn-20261102-tune", "repurchase-20261102-tune"]
    source_dir = sagemaker_jobs.upload_source_dir()
    assert source_dir.startswith("s3://lake/data/system/sagemaker/sourcedir-")
    source = aws_ml.get_object(Bucket="lake", Key=source_dir.removeprefix("s3://lake/"))["Body"].read()
    assert len(source) > 100
    for config in tuning:
        job = config["TrainingJobDefinition"]
        assert job["StaticHyperParameters"]["sagemaker_submit_directory"] == source_dir
        assert config["HyperParameterTuningJobConfig"]["Strategy"] == "Bayesian"
        assert config["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == {
            "Type": "Maximize", "MetricName": "validation:auc"}
        _stubbed("create_hyper_parameter_tuning_job", config, {"HyperParameterTuningJobArn": "arn:aws:sagemaker:"
                 "us-east-1:123456789012:hyper-parameter-tuning-job/x"})
    _stubbed("create_training_job", _tuned_training("churn"),
             {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"})
    model_config, transform = _model_and_transform("churn")
    _stubbed("create_model", model_config, {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x"})
    _stubbed("create_transform_job", transform,
             {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/x"})


def test_a_bad_config_is_refused_by_the_api_model(aws_ml):
    config = _tuned_training("churn")
    config["ResourceConfig"]["InstanceCount"] = "one"

    with pytest.raises(awsapi.AwsRequestError, match=r"ResourceConfig\.InstanceCount"):
        _stubbed("create_training_job", config, {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"})


def test_the_provider_operators_start_the_jobs_on_moto(aws_ml, moto_server):
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerModelOperator,
        SageMakerTrainingOperator,
        SageMakerTransformOperator,
        SageMakerTuningOperator,
    )

    context = {"ti": mock.Mock(try_number=1)}
    (tuning, _) = model_jobs.plan_tuning(DAY)
    SageMakerTuningOperator(task_id="tune_model", config=tuning, wait_for_completion=False).execute(context)
    training = _tuned_training("churn")
    SageMakerTrainingOperator(task_id="train_model", config=training, wait_for_completion=False,
                              check_if_job_exists=False).execute(context)
    aws_ml.put_object(Bucket="lake", Key=f"data/ml/churn/models/dt={DAY}/{training['TrainingJobName']}/output/"
                                         "model.tar.gz", Body=b"model")
    aws_ml.put_object(Bucket="lake", Key=f"data/ml/churn/scores/dt={DAY}/input/part-00000.csv", Body=b"1,2\n")
    model_config, transform = _model_and_transform("churn")
    SageMakerModelOperator(task_id="create_model", config=model_config).execute(context)
    SageMakerTransformOperator(task_id="score_model", config=transform, wait_for_completion=False,
                               check_if_job_exists=False, check_if_model_exists=False).execute(context)

    sagemaker = boto3.client("sagemaker", endpoint_url=moto_server, region_name="us-east-1")
    tuned = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="churn-20261102-tune")
    assert tuned["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6
    trained = sagemaker.describe_training_job(TrainingJobName=training["TrainingJobName"])
    assert trained["HyperParameters"]["sagemaker_program"] == "train.py"
    assert trained["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == \
        f"s3://lake/data/ml/churn/datasets/dt={DAY}/train"
    served = sagemaker.describe_model(ModelName="cc-churn-v0001")
    assert served["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    scored = sagemaker.describe_transform_job(TransformJobName=transform["TransformJobName"])
    assert scored["DataProcessing"] == transform["DataProcessing"]


def test_every_version_becomes_a_model_package_of_its_group(aws_ml, moto_server):
    card = {"model": "churn", "version": "v0001", "training_partition": DAY.isoformat(), "promoted": True,
            "decision": "promoted: the first model, and it beats the baseline", "metrics": {"auc": 0.81},
            "baseline": {"auc": 0.74}, "model_data": "s3://lake/data/ml/churn/registry/v0001/model.tar.gz"}

    first = model_registry.register_model_package(card)
    second = model_registry.register_model_package({**card, "version": "v0002", "promoted": False})

    sagemaker = boto3.client("sagemaker", endpoint_url=moto_server, region_name="us-east-1")
    packages = sagemaker.list_model_packages(ModelPackageGroupName="crosschannel-churn")["ModelPackageSummaryList"]
    assert {p["ModelPackageArn"] for p in packages} == {first, second}
    described = sagemaker.describe_model_package(ModelPackageName=first)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["CustomerMetadataProperties"]["test_auc"] == "0.810000"
    assert sagemaker.describe_model_package(ModelPackageName=second)["ModelApprovalStatus"] == "Rejected"


def test_each_run_names_its_own_jobs_within_sagemakers_limits(aws_ml):
    first = [t["HyperParameterTuningJobName"] for t in model_jobs.plan_tuning(DAY, run="manual__2026-11-03T04:00:00")]
    again = [t["HyperParameterTuningJobName"] for t in model_jobs.plan_tuning(DAY, run="manual__2026-11-03T09:30:00")]

    assert first != again and len(set(first + again)) == 4
    assert all(len(name) <= 32 and name.startswith(("churn-20261102-tune-", "repurchase-20261102-tune-"))
               for name in first + again)


@pytest.mark.parametrize("tag", sorted(sagemaker_jobs.IMAGES))
def test_the_sagemaker_scripts_run_on_the_python_of_every_supported_image(tag):
    """Issue 13: inference.py used zip(strict=True) (Python 3.10) while the configured image sagemaker-xgboost:1.7-1
    runs Python 3.8, so every transform request would fail. vermin reports the minimum version of every construct
    and library call."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import BUNDLE

    python = sagemaker_jobs.IMAGES[tag]["python"]
    checked = subprocess.run([str(Path(sys.executable).parent / "vermin"), "--no-tips", "--violations",
                              f"-t={python}-", str(BUNDLE / "include" / "sagemaker")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_default_image_runs_the_xgboost_the_local_target_trains_with():
    """The default image (chosen deliberately: crosschannel.core.sagemaker.IMAGES) carries the XGBoost the bundle
    pins, so a model trained by train.py on either target is read by the same library (every local training and
    scoring test is that round trip); an upgrade of one without the other fails here."""
    import xgboost

    tag = get_config().aws.sagemaker.image_uri.rsplit(":", 1)[1]
    assert tag == "3.2-0"
    assert sagemaker_jobs.IMAGES[tag]["xgboost"] == xgboost.__version__


def test_tuning_uses_the_images_built_in_objective_and_train_py_prints_what_it_reads(tmp_path):
    """The first-party XGBoost image rejects custom MetricDefinitions in a tuning job: the jobs name none and
    maximize the built-in validation:auc, whose regex must find train.py's best round as the last value."""
    import re

    from crosschannel.core.sagemaker import BUILTIN_METRICS

    config = sagemaker_jobs.tuning_config("t", {"train": "s3://b/t", "validation": "s3://b/v"}, "s3://b/o", "s3://b/s")
    definition = config["TrainingJobDefinition"]
    assert "MetricDefinitions" not in definition["AlgorithmSpecification"]
    objective = config["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    assert objective == {"Type": "Maximize", "MetricName": "validation:auc"}
    log = "[0]\tvalidation-logloss:0.60\tvalidation-auc:0.70\n[1]\tvalidation-logloss:0.55\tvalidation-auc:0.74\n" \
          "[2]\tvalidation-logloss:0.58\tvalidation-auc:0.73\n[1]\tvalidation-logloss:0.550000\tvalidation-auc:0.740000\n"
    cloudwatch = log.replace("\t", "#011")
    assert float(re.findall(BUILTIN_METRICS["validation:auc"], cloudwatch)[-1]) == 0.74


def test_inference_answers_csv_with_its_content_type():
    """output_fn returned a bare string, which the serving stack answers as text/html; it returns (body, type)."""
    from crosschannel.core.sagemaker import load_handlers, upload_source_dir

    handlers = load_handlers(upload_source_dir())
    body, content_type = handlers.output_fn([[0.25, "recency", "frequency", "monetary"]], "text/csv")
    assert (body, content_type) == ("0.250000,recency,frequency,monetary\n", "text/csv")


@pytest.mark.parametrize(("service", "operation", "params", "problem"), [
    ("personalize", "CreateDatasetImportJob",
     {"jobName": "_crosschannel-items", "datasetArn": "arn:aws:personalize:us-east-1:123456789012:dataset/r/ITEMS",
      "dataSource": {"dataLocation": "s3://lake/items/"}, "roleArn": "arn:aws:iam::123456789012:role/p"},
     r"jobName: '_crosschannel-items' does not match"),
    ("sagemaker", "CreateTrainingJob",
     {"TrainingJobName": "x" * 64, "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "i"},
      "RoleArn": "arn:aws:iam::123456789012:role/s", "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
      "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
      "StoppingCondition": {"MaxRuntimeInSeconds": 3600}},
     r"TrainingJobName: 64 characters is above the maximum 63"),
    ("customer-profiles", "CreateUploadJob",
     {"DomainName": "crosschannel", "DisplayName": "d", "UniqueKey": "customer_id", "DataExpiry": 5000,
      "Fields": {"customer_id": {"Source": "_source.customer_id", "Target": "_profile.AccountNumber",
                                 "ContentType": "STRING"}}},
     r"DataExpiry: 5000 is above the maximum 1098"),
])
def test_the_strict_check_refuses_what_only_aws_would_refuse(service, operation, params, problem):
    """Issue 13: botocore's validate_parameters checks types and required members only; a pattern, length or range
    AWS enforces server-side passed every test. The strict check names the member and the rule."""
    from botocore.validate import validate_parameters

    model = boto3.session.Session().client(service, region_name="us-east-1").meta.service_model
    validate_parameters(params, model.operation_model(operation).input_shape)  # boto3 would send it
    with pytest.raises(awsapi.AwsRequestError, match=problem):
        awsapi.check(service, operation, params)


def test_a_tuning_retry_resumes_the_job_its_first_try_created(aws_ml, moto_server):
    """Issue 13: the tune_model task's retry, after its worker was lost once the job existed, sent the same
    CreateHyperParameterTuningJob and got ResourceInUse. The DAG's operator looks the job up first and resumes it."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTuningOperator
    from airflow.sdk.exceptions import TaskDeferred
    from botocore.exceptions import ClientError

    from tests.conftest import BUNDLE

    mapped = DagBag(str(BUNDLE / "dags" / "propensity_training.py")).dags["propensity_training"].get_task("tune_model")
    operator_class = mapped.operator_class
    import uuid

    (tuning, _) = model_jobs.plan_tuning(DAY)
    tuning = {**tuning, "HyperParameterTuningJobName": f"resume-{uuid.uuid4().hex[:8]}"}  # moto outlives a test
    first = operator_class(task_id="tune_model", config=dict(tuning), deferrable=True, region_name="us-east-1")
    with pytest.raises(TaskDeferred):
        first.execute({"ti": mock.Mock(try_number=1)})
    tune_model = SageMakerTuningOperator(task_id="tune_model", config=dict(tuning), wait_for_completion=False,
                                         region_name="us-east-1")
    with pytest.raises(ClientError, match=r"ResourceInUse|already exists"):
        tune_model.execute({"ti": mock.Mock(try_number=2)})  # what the provider's operator does on the retry

    retry = operator_class(task_id="tune_model", config=dict(tuning), deferrable=True, region_name="us-east-1")
    try:
        outcome = retry.execute({"ti": mock.Mock(try_number=2)})
    except TaskDeferred as deferred:  # in progress: waited for in the triggerer, as the first try was
        assert deferred.trigger.job_name == tuning["HyperParameterTuningJobName"]
    else:
        assert outcome["Tuning"]["HyperParameterTuningJobName"] == tuning["HyperParameterTuningJobName"]
