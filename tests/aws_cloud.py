"""What AWS runs behind the aws target's requests, for the end-to-end test (tests/test_aws_e2e.py).

The bundle talks to a moto server on loopback through the provider's operators and its own. moto keeps the
control plane (jobs, their names and states) but runs no compute, so `Cloud` watches the requests the
bundle sends and, as the service would, runs the real work on what they point to:

- DMS StartReplicationTask: the local stand-in (crosschannel.local.dms_task) replicates the source DB into
  the S3 lake as DMS does, then the task stops at its stop position (moto reports no StopReason: it is
  added to DescribeReplicationTasks' answer);
- Glue StartJobRun: include/glue/run_sql.py under local pyspark on the job's arguments (a gate job: its GX
  module from --extra-py-files must be in S3), its S3 inputs copied
  to local disk and its output version and marker copied back (Glue reads and writes S3 itself);
- SageMaker CreateHyperParameterTuningJob / CreateTrainingJob / CreateTransformJob: train.py / inference.py in
  the SageMaker layout (crosschannel.local.sagemaker) on the channels the request names; the artifacts go where
  SageMaker puts them, and the tuning job's best training job is what the trials found;
- Amazon Personalize and Customer Profiles, which moto lacks: botocore's Stubber answers each call (its
  answers checked against the service model; a name taken is refused with ResourceAlreadyExistsException, as
  Personalize does), and Personalize reads the import file like the service does. Its training and batch
  inference run the bundle's local recommender (crosschannel.stages.recommendations): CreateSolutionVersion notes
  the recipe and the partition trained through, GetSolutionMetrics answers `solutions.local_metrics` of them, and
  CreateBatchInferenceJob reads the job's input from S3, runs `batch.run_request` on a local copy and writes the
  `<input>.out` output back to S3, as the service's role.

Every API call is recorded with the role that makes it (`calls`): the Airflow worker's, or the service's own
when it reads or writes the lake for a job, for the IAM check (tests/iam.py). The local recommender's reads of
the trusted zone stand for the datasets Personalize holds (imported by load_personalize): they are no call of any
role and are not recorded (`unrecorded`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

S3_URL = re.compile(r"s3://[A-Za-z0-9.\-_]+(?:/[^\s\"',\\]*)?")
ACCOUNT = "123456789012"
PERSONALIZE = f"arn:aws:personalize:us-east-1:{ACCOUNT}"
NAMED_DAY = re.compile(r"-(\d{8})-")  # crosschannel-user-20261101-<run hash>: the partition in a version or job name


class _Refused(Exception):
    """The service refuses the call with this error code (a Stubber client error)."""


class Cloud:
    def __init__(self, endpoint: str, workdir: Path, spark, profiles_upload_url: str) -> None:
        import boto3

        self.endpoint, self.workdir, self.spark = endpoint, workdir, spark
        self.profiles_upload_url = profiles_upload_url
        self.role = "worker"
        self.calls: list[dict] = []
        self.refused: list[str] = []
        self.jobs: list[tuple[str, str]] = []  # (service, what ran)
        # Personalize's resources by name or ARN: solution name -> recipe ARN, filter name -> CreateFilter request,
        # solution version ARN -> (recipe, partition trained through, name), batch inference job name -> its request
        self.solutions: dict[str, str] = {}
        self.filters: dict[str, dict] = {}
        self.versions: dict[str, tuple[str, dt.date, str]] = {}
        self.batch_jobs: dict[str, dict] = {}
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    # ---- the interception

    def install(self, monkeypatch) -> None:
        import aiobotocore.client
        import botocore.client
        from moto.dms.models import FakeReplicationTask
        from moto.moto_api import state_manager

        cloud = self
        sync_call = botocore.client.BaseClient._make_api_call
        async_call = aiobotocore.client.AioBaseClient._make_api_call

        def make_api_call(client, operation: str, params: dict):
            service = client.meta.service_model.service_name
            cloud.record(service, operation, params)
            cloud.check(service, operation, params)
            if service in ("personalize", "customer-profiles"):
                cloud.answer(client, service, operation, params)
            answer = sync_call(client, operation, params)
            cloud.run_compute(service, operation, params, answer)
            return answer

        async def make_async_call(client, operation: str, params: dict):
            cloud.record(client.meta.service_model.service_name, operation, params)
            return await async_call(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
        monkeypatch.setattr(aiobotocore.client.AioBaseClient, "_make_api_call", make_async_call)
        to_dict = FakeReplicationTask.to_dict
        monkeypatch.setattr(FakeReplicationTask, "to_dict", lambda task: {
            **to_dict(task), **({"StopReason": task.stop_reason} if getattr(task, "stop_reason", None) else {})})
        # a Glue job run is done when its StartJobRun returns (the work ran synchronously here)
        state_manager.set_transition("glue::job_run", {"progression": "immediate"})

    def record(self, service: str, operation: str, params: dict) -> None:
        """One record per resource the call acts on: S3 objects by ARN (every key of a DeleteObjects, the source
        of a copy too), other services' calls without one."""
        if self.role is None:  # unrecorded: the stand-in's own reads (`unrecorded`)
            return
        call = {"role": self.role, "service": service, "operation": operation, "resource": None}
        if service != "s3" or "Bucket" not in params:
            self.calls.append(call)
            return
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        keys = [o["Key"] for o in params.get("Delete", {}).get("Objects", [])] or [params.get("Key")]
        source = params.get("CopySource")
        if isinstance(source, dict):
            call["source"] = f"arn:aws:s3:::{source['Bucket']}/{source['Key']}"
        elif isinstance(source, str):
            call["source"] = "arn:aws:s3:::" + source.lstrip("/").split("?")[0]
        self.calls += [{**call, "resource": f"{bucket}/{key}" if key else bucket} for key in keys]

    def check(self, service: str, operation: str, params: dict) -> None:
        """Every request the bundle sends, strictly against the service model (crosschannel.core.awsapi): what
        AWS would refuse is kept in `refused` (raising here would only show as a retried task)."""
        from crosschannel.core import awsapi

        try:
            awsapi.check(service, operation, params)
        except awsapi.AwsRequestError as exc:
            self.refused.append(str(exc))

    @contextlib.contextmanager
    def acting_as(self, role: str):
        """The calls made inside are the service's own (its role's), not the worker's. A plain attribute, not a
        context variable: s3fs sends from its own event-loop thread."""
        previous, self.role = self.role, role
        try:
            yield
        finally:
            self.role = previous

    def unrecorded(self):
        """The calls made inside are no role's: the local recommender reading the trusted zone in place of the
        datasets Personalize holds."""
        return self.acting_as(None)

    # ---- S3 <-> local disk, as a job's container sees its inputs and outputs

    def local(self, url: str) -> Path:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        return self.workdir / "mirror" / bucket / key

    def download(self, url: str) -> Path:
        """The object, or every object under the prefix, at `url`, copied to local disk."""
        bucket, _, key = url.removeprefix("s3://").partition("/")
        target = self.local(url)
        prefix = key.rstrip("/") + "/"
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/"))
        for obj in listed.get("Contents", []):
            if obj["Key"] == key or obj["Key"].startswith(prefix):
                path = self.local(f"s3://{bucket}/{obj['Key']}")
                path.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, obj["Key"], str(path))
        return target

    def localized(self, request: Any) -> Any:
        """The request with each s3:// location downloaded and replaced by its file:// copy."""
        text = json.dumps(request)
        for url in sorted(set(S3_URL.findall(text)), key=len, reverse=True):
            text = text.replace(url, "file://" + str(self.download(url)))
        return json.loads(text)

    def upload(self, url: str, skip: tuple[str, ...] = ()) -> None:
        """Every file of the local copy of `url` to S3 (the marker, if any, last: it commits the partition)."""
        bucket, _, key = url.removeprefix("s3://").partition("/")
        root = self.local(url)
        files = sorted((p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".crc")),
                       key=lambda p: (p.parent == root and p.name == "_SUCCESS", str(p)))
        for path in files:
            if not any(part in skip for part in path.relative_to(root).parts):
                self.s3.upload_file(str(path), bucket, f"{key.rstrip('/')}/{path.relative_to(root).as_posix()}")

    # ---- the services' compute

    def run_compute(self, service: str, operation: str, params: dict, answer: dict) -> None:
        run = {("dms", "StartReplicationTask"): self.replicate, ("glue", "StartJobRun"): self.glue_job,
               ("sagemaker", "CreateHyperParameterTuningJob"): self.tune,
               ("sagemaker", "CreateTrainingJob"): self.train,
               ("sagemaker", "CreateTransformJob"): self.transform}.get((service, operation))
        if run is not None:
            run(params)
            self.jobs.append((service, operation))

    def _moto(self, service: str):
        from moto.backends import get_backend

        return get_backend(service)[ACCOUNT]["us-east-1"]

    def replicate(self, params: dict) -> None:
        import datetime as dt

        from crosschannel.core import paths, storage
        from crosschannel.local.dms_task import LocalReplicationTask

        stop = params["CdcStopPosition"].removeprefix("commit_time:")
        day = dt.datetime.fromisoformat(stop).date() - dt.timedelta(days=1)
        landing = storage.url_of(paths.dms_landing())
        with self.acting_as("dms"), self._lake_on_local_disk():
            LocalReplicationTask().start(params["StartReplicationTaskType"], day)
        with self.acting_as("dms"):
            self.upload(landing)
        task = self._moto("dms").replication_tasks[params["ReplicationTaskArn"]]
        task.run()
        task.stop()
        task.stop_reason = "Stop Reason STOPPED_AT_COMMIT_TIME"

    @contextlib.contextmanager
    def _lake_on_local_disk(self):
        """The local stand-in writes DMS's layout to a local copy of the lake (it writes local files only); the
        target switches back once it is done."""
        import os

        from crosschannel.core.config import get_config

        saved = {k: os.environ.get(k) for k in ("CROSSCHANNEL__TARGET", "CROSSCHANNEL__STORAGE__ROOT")}
        os.environ.update({"CROSSCHANNEL__TARGET": "local",
                           "CROSSCHANNEL__STORAGE__ROOT": str(self.local(get_config().storage.url))})
        get_config.cache_clear()
        try:
            yield
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
            get_config.cache_clear()

    def glue_job(self, params: dict) -> None:
        from tests.conftest import glue_script

        args, script = params["Arguments"], glue_script()
        with self.acting_as("glue"):
            output = args["--output_path"].rstrip("/")
            marker = f"{output}/_SUCCESS"
            self.download(marker)  # the partition's current pointer, which the commit retires
            local_output = self.local(output)
            if local_output.exists():
                for old in local_output.glob("_v*"):
                    shutil.rmtree(old)  # versions already in S3 are not uploaded again
            if "--gates_path" in args:  # a gate job: GX Core from pip, gx_checks.py from S3 on the Python path
                assert args["--additional-python-modules"].startswith("great_expectations=="), args
                if not self.download(args["--extra-py-files"]).is_file():
                    raise ModuleNotFoundError(f"--extra-py-files {args['--extra-py-files']}: no such object")
                spec = self.download(args["--gates_path"])
                spec.write_text(json.dumps(self.localized(json.loads(spec.read_text()))))
                script.run_gates(self.spark, "file://" + str(spec), "file://" + str(local_output))
            else:
                given = args["--inputs"] if "--inputs" in args else self.download(args["--inputs_path"]).read_text()
                script.run(self.spark, "file://" + str(self.download(args["--sql_path"])),
                           self.localized(json.loads(given)), "file://" + str(local_output),
                           args.get("--output_format", "parquet"), args.get("--manifest"))
            # Hadoop's local checksum files never reach S3: a later job reading this mirror (a transform of the
            # whole prefix) must see what S3 holds
            for checksum in local_output.rglob("*.crc"):
                checksum.unlink()
            self.upload(output)

    def tune(self, params: dict) -> None:
        from crosschannel.local.sagemaker import run_tuning_job

        with self.acting_as("sagemaker"):
            described = run_tuning_job(self.localized(params))
            self.upload(params["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"])
        name = params["HyperParameterTuningJobName"]
        job, best = self._moto("sagemaker").hyper_parameter_tuning_jobs[name], described["BestTrainingJob"]
        job.best_training_job = {**job.best_training_job, **best, "TuningJobName": name,
                                 "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/"
                                                   f"{best['TrainingJobName'].lower()}", "FailureReason": ""}
        job.OverallBestTrainingJob = job.best_training_job

    def train(self, params: dict) -> None:
        from crosschannel.local.sagemaker import run_training_job

        with self.acting_as("sagemaker"):
            run_training_job(self.localized(params))
            self.upload(f"{params['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{params['TrainingJobName']}")

    def transform(self, params: dict) -> None:
        from crosschannel.local.sagemaker import run_transform_job

        model = self._moto("sagemaker").describe_model(params["ModelName"])
        with self.acting_as("sagemaker"):
            run_transform_job(self.localized({"PrimaryContainer": model.primary_container}), self.localized(params))
            self.upload(params["TransformOutput"]["S3OutputPath"])

    # ---- the services moto lacks: botocore's Stubber answers

    def answer(self, client, service: str, operation: str, params: dict) -> None:
        from botocore import xform_name
        from botocore.stub import Stubber

        stubber = getattr(client, "_e2e_stubber", None)
        if stubber is None:
            stubber = client._e2e_stubber = Stubber(client)
            stubber.activate()
        if (service, operation) == ("customer-profiles", "GetSegmentDefinition"):
            stubber.add_client_error("get_segment_definition", "ResourceNotFoundException", http_status_code=404,
                                     expected_params=params)
            return
        try:
            answer = self._answers(operation, params)
        except _Refused as refused:
            stubber.add_client_error(xform_name(operation), str(refused), "refused by the end-to-end test's cloud",
                                     http_status_code=400, expected_params=params)
            return
        stubber.add_response(xform_name(operation), answer, expected_params=params)

    def _answers(self, operation: str, params: dict) -> dict:
        if operation in PERSONALIZE_ANSWERS:
            return PERSONALIZE_ANSWERS[operation](self, params)
        job_arn = f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset-import-job/{params.get('jobName', '')}"
        if operation == "CreateDatasetImportJob":
            with self.acting_as("personalize"):  # the service reads the file the job names
                self.download(params["dataSource"]["dataLocation"])
            self.jobs.append(("personalize", params["jobName"]))
            return {"datasetImportJobArn": job_arn}
        if operation == "DescribeDatasetImportJob":
            arn = params["datasetImportJobArn"]
            return {"datasetImportJob": {"datasetImportJobArn": arn, "jobName": arn.rsplit("/", 1)[1],
                                         "status": "ACTIVE"}}
        if operation == "ListDatasetImportJobs":
            return {"datasetImportJobs": []}
        if operation == "CreateUploadJob":
            self.jobs.append(("customer-profiles", params["DisplayName"]))
            return {"JobId": "0123456789abcdef0123456789abcdef"}
        if operation == "GetUploadJobPath":
            return {"Url": self.profiles_upload_url}
        if operation == "StartUploadJob":
            return {}
        if operation == "GetUploadJob":
            return {"JobId": params["JobId"], "Status": "SUCCEEDED",
                    "ResultsSummary": {"CreatedRecords": 0, "UpdatedRecords": 0, "FailedRecords": 0}}
        if operation == "CreateSegmentDefinition":
            return {"SegmentDefinitionName": params["SegmentDefinitionName"],
                    "SegmentDefinitionArn": f"arn:aws:profile:us-east-1:{ACCOUNT}:domains/{params['DomainName']}/"
                                            f"segment-definitions/{params['SegmentDefinitionName']}"}
        raise AssertionError(f"the end-to-end test has no answer for {operation}: add it to tests/aws_cloud.py")


# ---- Amazon Personalize's solutions, filters, training and batch inference

def _named_day(name: str) -> dt.date:
    found = NAMED_DAY.search(name)
    assert found, f"{name}: the end-to-end test reads the partition from names like crosschannel-user-20261101-<hash>"
    return dt.datetime.strptime(found[1], "%Y%m%d").date()


def _create_solution(cloud: Cloud, params: dict) -> dict:
    if params["name"] in cloud.solutions:
        raise _Refused("ResourceAlreadyExistsException")
    cloud.solutions[params["name"]] = params["recipeArn"]
    return {"solutionArn": f"{PERSONALIZE}:solution/{params['name']}"}


def _describe_solution(cloud: Cloud, params: dict) -> dict:
    name = params["solutionArn"].rsplit("/", 1)[1]
    return {"solution": {"name": name, "solutionArn": params["solutionArn"], "recipeArn": cloud.solutions[name],
                         "performAutoTraining": False, "status": "ACTIVE"}}


def _filter(params: dict) -> dict:
    return {"name": params["name"], "filterArn": f"{PERSONALIZE}:filter/{params['name']}",
            "datasetGroupArn": params["datasetGroupArn"], "status": "ACTIVE"}


def _create_filter(cloud: Cloud, params: dict) -> dict:
    if params["name"] in cloud.filters:  # both recipes' plans name the dataset group's one stock filter
        raise _Refused("ResourceAlreadyExistsException")
    cloud.filters[params["name"]] = params
    return {"filterArn": _filter(params)["filterArn"]}


def _list_filters(cloud: Cloud, params: dict) -> dict:
    return {"Filters": [_filter(f) for f in cloud.filters.values()
                        if f["datasetGroupArn"] == params.get("datasetGroupArn", f["datasetGroupArn"])]}


def _describe_filter(cloud: Cloud, params: dict) -> dict:
    (created,) = [f for f in cloud.filters.values() if _filter(f)["filterArn"] == params["filterArn"]]
    return {"filter": {**_filter(created), "filterExpression": created["filterExpression"]}}


def _create_solution_version(cloud: Cloud, params: dict) -> dict:
    """Training: the version is the local recipe as of the partition its name carries."""
    arn = f"{params['solutionArn']}/{hashlib.md5(params['name'].encode()).hexdigest()[:8]}"
    if arn in cloud.versions:
        raise _Refused("ResourceAlreadyExistsException")
    recipe = cloud.solutions[params["solutionArn"].rsplit("/", 1)[1]].rsplit("/", 1)[1]
    cloud.versions[arn] = (recipe, _named_day(params["name"]), params["name"])
    cloud.jobs.append(("personalize", params["name"]))
    return {"solutionVersionArn": arn}


def _describe_solution_version(cloud: Cloud, params: dict) -> dict:
    arn = params["solutionVersionArn"]
    return {"solutionVersion": {"name": cloud.versions[arn][2], "solutionVersionArn": arn,
                                "solutionArn": arn.rsplit("/", 1)[0], "trainingMode": "FULL", "status": "ACTIVE"}}


def _list_solution_versions(cloud: Cloud, params: dict) -> dict:
    return {"solutionVersions": [{"solutionVersionArn": arn, "status": "ACTIVE"} for arn in cloud.versions
                                 if arn.rsplit("/", 1)[0] == params.get("solutionArn", arn.rsplit("/", 1)[0])]}


def _get_solution_metrics(cloud: Cloud, params: dict) -> dict:
    from crosschannel.stages.recommendations import solutions

    recipe, day, _ = cloud.versions[params["solutionVersionArn"]]
    with cloud.unrecorded():
        metrics = solutions.local_metrics(recipe, day)
    return {"solutionVersionArn": params["solutionVersionArn"], "metrics": metrics}


def _create_batch_inference_job(cloud: Cloud, params: dict) -> dict:
    """The job runs at once, as the service's role: the input read from S3, `batch.run_request` on a local copy,
    the output (`<input>.out`) written back to S3."""
    from crosschannel.stages.recommendations import batch

    if params["jobName"] in cloud.batch_jobs:
        raise _Refused("ResourceAlreadyExistsException")
    assert params["solutionVersionArn"] in cloud.versions, \
        f"{params['jobName']}: solution version {params['solutionVersionArn']} was not trained in this run"
    recipe, trained_through, _ = cloud.versions[params["solutionVersionArn"]]
    source, target = params["jobInput"]["s3DataSource"]["path"], params["jobOutput"]["s3DataDestination"]["path"]
    with cloud.acting_as("personalize"):
        local_input = cloud.download(source)
    local_output = cloud.local(target)
    if local_output.exists():
        shutil.rmtree(local_output)
    local = {**params, "jobInput": {"s3DataSource": {"path": f"file://{local_input}"}},
             "jobOutput": {"s3DataDestination": {"path": f"file://{local_output}/"}}}
    with cloud.unrecorded():
        batch.run_request(local, recipe=recipe, trained_through=trained_through, day=_named_day(params["jobName"]))
    with cloud.acting_as("personalize"):
        cloud.upload(target)
    cloud.batch_jobs[params["jobName"]] = params
    cloud.jobs.append(("personalize", params["jobName"]))
    return {"batchInferenceJobArn": f"{PERSONALIZE}:batch-inference-job/{params['jobName']}"}


def _batch_job(name: str, params: dict) -> dict:
    return {"jobName": name, "batchInferenceJobArn": f"{PERSONALIZE}:batch-inference-job/{name}",
            "solutionVersionArn": params["solutionVersionArn"], "status": "ACTIVE"}


def _describe_batch_inference_job(cloud: Cloud, params: dict) -> dict:
    name = params["batchInferenceJobArn"].rsplit("/", 1)[1]
    job = cloud.batch_jobs[name]
    return {"batchInferenceJob": {**_batch_job(name, job), "jobInput": job["jobInput"], "jobOutput": job["jobOutput"],
                                  "roleArn": job["roleArn"], "numResults": job.get("numResults", 25)}}


def _list_batch_inference_jobs(cloud: Cloud, params: dict) -> dict:
    return {"batchInferenceJobs": [_batch_job(name, job) for name, job in cloud.batch_jobs.items()
                                   if job["solutionVersionArn"] == params.get("solutionVersionArn",
                                                                              job["solutionVersionArn"])]}


PERSONALIZE_ANSWERS = {
    "CreateSolution": _create_solution, "DescribeSolution": _describe_solution,
    "CreateFilter": _create_filter, "ListFilters": _list_filters, "DescribeFilter": _describe_filter,
    "CreateSolutionVersion": _create_solution_version, "DescribeSolutionVersion": _describe_solution_version,
    "ListSolutionVersions": _list_solution_versions, "GetSolutionMetrics": _get_solution_metrics,
    "CreateBatchInferenceJob": _create_batch_inference_job,
    "DescribeBatchInferenceJob": _describe_batch_inference_job,
    "ListBatchInferenceJobs": _list_batch_inference_jobs,
}
