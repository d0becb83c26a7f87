"""What AWS runs behind the aws target's requests, for the end-to-end test (tests/test_aws_e2e.py).

The bundle talks to a moto server on loopback through the provider's operators and its own. moto keeps the
control plane (jobs, their names and states) but runs no compute, so `Cloud` watches the requests the
bundle sends and, as the service would, runs the real work on what they point to:

- DMS StartReplicationTask: the local stand-in (crosschannel.local.dms_task) replicates the source DB into
  the S3 lake as DMS does, then the task stops at its stop position (moto reports no StopReason: it is
  added to DescribeReplicationTasks' answer);
- Glue StartJobRun: include/glue/run_sql.py under local pyspark on the job's arguments, its S3 inputs copied
  to local disk and its output version and marker copied back (Glue reads and writes S3 itself);
- SageMaker CreateHyperParameterTuningJob / CreateTrainingJob / CreateTransformJob: train.py / inference.py in
  the SageMaker layout (crosschannel.local.sagemaker) on the channels the request names; the artifacts go where
  SageMaker puts them, and the tuning job's best training job is what the trials found;
- Amazon Personalize and Customer Profiles, which moto lacks: botocore's Stubber answers each call (its
  answers checked against the service model), and Personalize reads the import file like the service does.

Every API call is recorded with the role that makes it (`calls`): the Airflow worker's, or the service's own
when it reads or writes the lake for a job, for the IAM check (tests/iam.py).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

S3_URL = re.compile(r"s3://[A-Za-z0-9.\-_]+(?:/[^\s\"',\\]*)?")
ACCOUNT = "123456789012"


class Cloud:
    def __init__(self, endpoint: str, workdir: Path, spark, profiles_upload_url: str) -> None:
        import boto3

        self.endpoint, self.workdir, self.spark = endpoint, workdir, spark
        self.profiles_upload_url = profiles_upload_url
        self.role = "worker"
        self.calls: list[dict] = []
        self.refused: list[str] = []
        self.jobs: list[tuple[str, str]] = []  # (service, what ran)
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
            inputs = self.localized(json.loads(args["--inputs"]))
            output = args["--output_path"].rstrip("/")
            marker = f"{output}/_SUCCESS"
            self.download(marker)  # the partition's current pointer, which the commit retires
            local_output = self.local(output)
            if local_output.exists():
                for old in local_output.glob("_v*"):
                    shutil.rmtree(old)  # versions already in S3 are not uploaded again
            script.run(self.spark, "file://" + str(self.download(args["--sql_path"])), inputs,
                       "file://" + str(local_output))
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
        stubber.add_response(xform_name(operation), self._answers(operation, params), expected_params=params)

    def _answers(self, operation: str, params: dict) -> dict:
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
