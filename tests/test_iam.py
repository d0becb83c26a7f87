"""The least-privilege IAM policies of include/aws/iam/: their shape, no wildcard actions, the evaluator of
tests/iam.py, and a static check that every AWS call of the aws target is allowed by the policy of the role that
makes it and that every action a policy grants is used by one of those calls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
import pytest

from tests.iam import (
    PASSES,
    POLICY_DIR,
    ROLES,
    TRUSTED_SERVICE,
    allows,
    as_list,
    check_calls,
    load_policy,
    needs,
    placeholders,
    policy_path,
    statement_applies,
    statements,
    substitute,
)

README = Path(__file__).resolve().parents[1] / "README.md"
SUBS = {
    "Region": "us-east-1", "Account": "123456789012", "LakeBucket": "lake", "LakePrefix": "retail",
    "SegmentBucket": "segment-lake", "SegmentPrefix": "segment-logs", "GlueScriptBucket": "artifacts",
    "GlueScriptPrefix": "glue", "GlueJobName": "crosschannel-sql",
    "GlueRoleArn": "arn:aws:iam::123456789012:role/crosschannel-glue",
    "SageMakerRoleArn": "arn:aws:iam::123456789012:role/crosschannel-sagemaker",
    "PersonalizeRoleArn": "arn:aws:iam::123456789012:role/crosschannel-personalize",
    "PinpointRoleArn": "arn:aws:iam::123456789012:role/crosschannel-pinpoint-import",
    "DmsTaskArn": "arn:aws:dms:us-east-1:123456789012:task:ABCDEFGHIJ", "ModelPackageGroup": "crosschannel",
    "ImageAccount": "683313688378", "ImageRepository": "sagemaker-xgboost", "ProfilesDomain": "crosschannel",
    "PersonalizeDatasetGroup": "crosschannel", "PinpointAppId": "0123456789abcdef0123456789abcdef",
    "SnsTopicArn": "arn:aws:sns:us-east-1:123456789012:crosschannel-alerts",
}
LAKE = "arn:aws:s3:::${LakeBucket}/${LakePrefix}"
SM = "arn:aws:sagemaker:${Region}:${Account}"
DOMAIN = "arn:aws:profile:${Region}:${Account}:domains/${ProfilesDomain}"
APP = "arn:aws:mobiletargeting:${Region}:${Account}:apps/${PinpointAppId}"
JOB = "arn:aws:glue:${Region}:${Account}:job/${GlueJobName}"
IMPORT = "arn:aws:personalize:${Region}:${Account}:dataset-import-job/crosschannel-interactions-20261101-full-0a1b2c3d"
GROUP = SM + ":model-package-group/${ModelPackageGroup}-churn"
SOLUTION = "arn:aws:personalize:${Region}:${Account}:solution/crosschannel-user-personalization"
FILTER = "arn:aws:personalize:${Region}:${Account}:filter/crosschannel-in-stock"
BATCH_JOB = "arn:aws:personalize:${Region}:${Account}:batch-inference-job/crosschannel-user-20261101-0a1b2c"
RECOMMENDATIONS = f"{LAKE}/activation/recommendations/dt=2026-11-01/attempt=20261102T070000000000Z-0a1b"
TRAINING_LOGS = "arn:aws:logs:${Region}:${Account}:log-group:/aws/sagemaker/TrainingJobs"

# Every AWS call the aws target makes, by the role whose credentials make it: (role, botocore service, operation,
# resource or None, condition context). Worker: the Airflow workers and the triggerer (aws_default).
CALLS = [
    # crosschannel.core.storage over s3fs (ObjectStoragePath): exists/info, glob/iterdir, mkdir's bucket probe,
    # read, write (multipart above s3fs's block size, aborted on failure), server-side copy, rm / unlink; the
    # provider's SageMaker check_s3_url (head_bucket, head_object, list_objects_v2) too
    ("worker", "s3", "ListObjectsV2", f"{LAKE}/trusted/orders/", None),
    ("worker", "s3", "HeadBucket", "arn:aws:s3:::${LakeBucket}", None),
    ("worker", "s3", "HeadObject", f"{LAKE}/trusted/orders/dt=2026-11-01/_SUCCESS", None),
    ("worker", "s3", "GetObject", f"{LAKE}/trusted/orders/dt=2026-11-01/_SUCCESS", None),
    ("worker", "s3", "PutObject", f"{LAKE}/system/sql/dt=2026-11-01/cdc_merge-orders.sql", None),
    ("worker", "s3", "CreateMultipartUpload", f"{LAKE}/activation/customer_profiles/dt=2026-11-01/p.csv", None),
    ("worker", "s3", "UploadPart", f"{LAKE}/activation/customer_profiles/dt=2026-11-01/p.csv", None),
    ("worker", "s3", "CompleteMultipartUpload", f"{LAKE}/activation/customer_profiles/dt=2026-11-01/p.csv", None),
    ("worker", "s3", "AbortMultipartUpload", f"{LAKE}/activation/customer_profiles/dt=2026-11-01/p.csv", None),
    ("worker", "s3", "CopyObject", f"{LAKE}/landing/full_loads/dt=2026-11-01/orders/LOAD00000001.csv", None),
    ("worker", "s3", "DeleteObject", f"{LAKE}/trusted/orders/dt=2026-11-01/_v1-abc/part-0.parquet", None),
    ("worker", "s3", "DeleteObjects", f"{LAKE}/staging/trusted/orders/dt=2026-11-01/run=ab/x.parquet", None),
    # segment.logs_uri: Segment's S3 destination, read only
    ("worker", "s3", "ListObjectsV2", "arn:aws:s3:::${SegmentBucket}/${SegmentPrefix}/retail-web/", None),
    ("worker", "s3", "HeadObject", "arn:aws:s3:::${SegmentBucket}/${SegmentPrefix}/retail-web/1/x.gz", None),
    ("worker", "s3", "GetObject", "arn:aws:s3:::${SegmentBucket}/${SegmentPrefix}/retail-web/1/x.gz", None),
    # wiring/steps.py: DmsHook.get_task_description, DmsStartTaskOperator, DmsTaskCompletedSensor
    ("worker", "dms", "DescribeReplicationTasks", None, None),
    ("worker", "dms", "StartReplicationTask", "${DmsTaskArn}", None),
    # GlueJobOperator (update_config, deferrable, durable on 3.3: a retry looks for its run) and its trigger
    ("worker", "glue", "GetJob", JOB, None),
    ("worker", "glue", "CreateJob", JOB, None),
    ("worker", "glue", "UpdateJob", JOB, None),
    ("worker", "glue", "StartJobRun", JOB, None),
    ("worker", "glue", "GetJobRun", JOB, None),
    ("worker", "glue", "GetJobRuns", JOB, None),
    # ResumingTuningOperator, SageMakerTrainingOperator (print_log: the training log), SageMakerModelOperator,
    # SageMakerTransformOperator, SageMakerTrigger; stages/models/jobs.py and registry.py
    ("worker", "sagemaker", "DescribeHyperParameterTuningJob", f"{SM}:hyper-parameter-tuning-job/churn-20261101-tune",
     None),
    ("worker", "sagemaker", "CreateHyperParameterTuningJob", f"{SM}:hyper-parameter-tuning-job/churn-20261101-tune",
     None),
    ("worker", "sagemaker", "DescribeTrainingJob", f"{SM}:training-job/churn-20261101-train", None),
    ("worker", "sagemaker", "CreateTrainingJob", f"{SM}:training-job/churn-20261101-train", None),
    ("worker", "logs", "DescribeLogStreams", TRAINING_LOGS + ":*", None),
    ("worker", "logs", "GetLogEvents", TRAINING_LOGS + ":log-stream:churn-20261101-train/algo-1-1", None),
    ("worker", "sagemaker", "CreateModel", f"{SM}:model/churn-20261101-v0001-0a1b2c", None),
    ("worker", "sagemaker", "DescribeModel", f"{SM}:model/churn-20261101-v0001-0a1b2c", None),
    ("worker", "sagemaker", "DescribeTransformJob", f"{SM}:transform-job/churn-20261101-score", None),
    ("worker", "sagemaker", "CreateTransformJob", f"{SM}:transform-job/churn-20261101-score", None),
    ("worker", "sagemaker", "DescribeModelPackageGroup", GROUP, None),
    ("worker", "sagemaker", "CreateModelPackageGroup", GROUP, None),
    ("worker", "sagemaker", "CreateModelPackage", f"{SM}:model-package/${{ModelPackageGroup}}-churn/1", None),
    # wiring/aws/hooks.py (operators and ActivationJobTrigger)
    ("worker", "customer-profiles", "CreateUploadJob", DOMAIN, None),
    ("worker", "customer-profiles", "GetUploadJobPath", DOMAIN, None),
    ("worker", "customer-profiles", "StartUploadJob", DOMAIN, None),
    ("worker", "customer-profiles", "GetUploadJob", DOMAIN, None),
    ("worker", "customer-profiles", "GetSegmentDefinition", f"{DOMAIN}/segment-definitions/crosschannel_win_back",
     None),
    ("worker", "customer-profiles", "CreateSegmentDefinition", f"{DOMAIN}/segment-definitions/crosschannel_win_back",
     None),
    ("worker", "personalize", "CreateDatasetImportJob", IMPORT, None),
    ("worker", "personalize", "CreateDatasetImportJob",
     "arn:aws:personalize:${Region}:${Account}:dataset/${PersonalizeDatasetGroup}/INTERACTIONS", None),
    ("worker", "personalize", "ListDatasetImportJobs", None, None),
    ("worker", "personalize", "DescribeDatasetImportJob", IMPORT, None),
    # wiring/aws/hooks.py: the weekly training (PersonalizeSolutionOperator) and the daily batch inference
    # (PersonalizeBatchInferenceOperator), their waits in the worker and in ActivationJobTrigger
    ("worker", "personalize", "CreateSolution", SOLUTION, None),
    ("worker", "personalize", "DescribeSolution", SOLUTION, None),
    ("worker", "personalize", "CreateFilter", FILTER, None),
    ("worker", "personalize", "ListFilters", None, None),
    ("worker", "personalize", "DescribeFilter", FILTER, None),
    ("worker", "personalize", "CreateSolutionVersion", SOLUTION, None),
    ("worker", "personalize", "ListSolutionVersions", None, None),
    ("worker", "personalize", "DescribeSolutionVersion", f"{SOLUTION}/0a1b2c3d", None),
    ("worker", "personalize", "GetSolutionMetrics", f"{SOLUTION}/0a1b2c3d", None),
    ("worker", "personalize", "CreateBatchInferenceJob", BATCH_JOB, None),
    ("worker", "personalize", "ListBatchInferenceJobs", None, None),
    ("worker", "personalize", "DescribeBatchInferenceJob", BATCH_JOB, None),
    ("worker", "pinpoint", "CreateImportJob", APP, None),
    ("worker", "pinpoint", "GetImportJob", APP, None),
    # wiring/notify.py: SnsNotifier
    ("worker", "sns", "Publish", "${SnsTopicArn}", None),
    # the Glue job (include/glue/run_sql.py through Spark's S3 file system) and Glue's job logs
    ("glue", "s3", "GetObject", "arn:aws:s3:::${GlueScriptBucket}/${GlueScriptPrefix}/run_sql.py", None),
    ("glue", "s3", "GetObject", "arn:aws:s3:::${GlueScriptBucket}/${GlueScriptPrefix}/gx_checks.py", None),
    ("glue", "s3", "ListObjectsV2", f"{LAKE}/landing/dms/retail/orders/", None),
    ("glue", "s3", "HeadObject", f"{LAKE}/trusted/orders/dt=2026-11-01/_SUCCESS", None),
    ("glue", "s3", "GetObject", f"{LAKE}/system/sql/dt=2026-11-01/cdc_merge-orders.sql", None),
    ("glue", "s3", "PutObject", f"{LAKE}/staging/trusted/orders/dt=2026-11-01/run=ab/_v1-x/part-0.parquet", None),
    ("glue", "s3", "DeleteObject", f"{LAKE}/staging/trusted/orders/dt=2026-11-01/run=ab/_v0-y/part-0.parquet", None),
    ("glue", "logs", "CreateLogGroup", "arn:aws:logs:${Region}:${Account}:log-group:/aws-glue/jobs/output", None),
    ("glue", "logs", "CreateLogStream", "arn:aws:logs:${Region}:${Account}:log-group:/aws-glue/jobs/output", None),
    ("glue", "logs", "PutLogEvents",
     "arn:aws:logs:${Region}:${Account}:log-group:/aws-glue/jobs/output:log-stream:jr_0a1b", None),
    # SageMaker jobs with the execution role: channels, source dir, model artifacts, transform output, the image,
    # logs and metrics
    ("sagemaker", "s3", "ListObjectsV2", f"{LAKE}/ml/churn/datasets/dt=2026-11-01/", None),
    ("sagemaker", "s3", "GetObject", f"{LAKE}/system/sagemaker/sourcedir-0a1b2c3d4e5f.tar.gz", None),
    ("sagemaker", "s3", "PutObject", f"{LAKE}/ml/churn/models/dt=2026-11-01/churn-train/output/model.tar.gz", None),
    ("sagemaker", "ecr", "GetAuthorizationToken", None, None),
    ("sagemaker", "ecr", "BatchCheckLayerAvailability",
     "arn:aws:ecr:${Region}:${ImageAccount}:repository/${ImageRepository}", None),
    ("sagemaker", "ecr", "GetDownloadUrlForLayer",
     "arn:aws:ecr:${Region}:${ImageAccount}:repository/${ImageRepository}", None),
    ("sagemaker", "ecr", "BatchGetImage", "arn:aws:ecr:${Region}:${ImageAccount}:repository/${ImageRepository}", None),
    ("sagemaker", "logs", "CreateLogGroup", TRAINING_LOGS, None),
    ("sagemaker", "logs", "DescribeLogStreams", TRAINING_LOGS, None),
    ("sagemaker", "logs", "CreateLogStream", TRAINING_LOGS + ":log-stream:churn-20261101-train/algo-1-1", None),
    ("sagemaker", "logs", "PutLogEvents", TRAINING_LOGS + ":log-stream:churn-20261101-train/algo-1-1", None),
    ("sagemaker", "cloudwatch", "PutMetricData", None, {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}),
    # DMS's S3 target endpoint (bucket folder <storage.root>/landing/dms; a reload replaces LOAD files)
    ("dms", "s3", "ListObjectsV2", f"{LAKE}/landing/dms/", None),
    ("dms", "s3", "PutObject", f"{LAKE}/landing/dms/retail/orders/2026/11/01/20261101-1134010000.csv", None),
    ("dms", "s3", "DeleteObject", f"{LAKE}/landing/dms/retail/orders/LOAD00000001.csv", None),
    # Personalize and Pinpoint import jobs read their files with the role passed to them
    ("personalize", "s3", "ListObjectsV2", f"{LAKE}/activation/personalize/dt=2026-11-01/", None),
    ("personalize", "s3", "GetObject", f"{LAKE}/activation/personalize/dt=2026-11-01/a/interactions.csv", None),
    # ... and batch inference jobs read their input and write their output (<input>.out) with it
    ("personalize", "s3", "ListObjectsV2", f"{RECOMMENDATIONS}/users/users.json", None),
    ("personalize", "s3", "GetObject", f"{RECOMMENDATIONS}/users/users.json", None),
    ("personalize", "s3", "PutObject", f"{RECOMMENDATIONS}/users/output/users.json.out", None),
    ("pinpoint_import", "s3", "ListObjectsV2", f"{LAKE}/activation/pinpoint/dt=2026-11-01/", None),
    ("pinpoint_import", "s3", "GetObject", f"{LAKE}/activation/pinpoint/dt=2026-11-01/a/win_back-1.csv", None),
]


def _record(role, service, operation, resource, context) -> dict:
    record = {"role": role, "service": service, "operation": operation,
              "resource": None if resource is None else resource.replace("${", "{").format(**SUBS)}
    return {**record, "context": context} if context else record


RECORDS = [_record(*call) for call in CALLS]
TRUST_FILES = sorted(p for p in POLICY_DIR.glob("*.json") if p.name.endswith(".trust.json"))


@pytest.mark.parametrize("path", sorted(POLICY_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_policy_is_an_iam_policy_document_without_wildcard_actions(path):
    policy = json.loads(path.read_text())
    assert set(policy) == {"Version", "Statement"} and policy["Version"] == "2012-10-17"
    assert isinstance(policy["Statement"], list) and policy["Statement"]
    sids = [s["Sid"] for s in policy["Statement"] if "Sid" in s]
    assert len(sids) == len(set(sids)), "duplicate Sid"
    identity = path.name.count(".") == 1
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        assert "NotAction" not in statement and "NotResource" not in statement and "NotPrincipal" not in statement
        assert ("Principal" in statement) != identity, "identity policies name no Principal, the others do"
        for action in as_list(statement["Action"]):
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), f"{path.name}: {action!r} is not one exact action"
        assert identity or path.name.endswith(".trust.json") or as_list(statement["Resource"])
        if identity:
            assert as_list(statement["Resource"])


def test_every_role_has_its_policy_and_trust_policy():
    assert {p.name.split(".")[0] for p in POLICY_DIR.glob("*.json")} >= set(ROLES)
    for role, service in TRUSTED_SERVICE.items():
        (statement,) = statements(load_policy(role, "trust"))
        assert statement["Principal"] == {"Service": service} and statement["Action"] == "sts:AssumeRole"
    assert [p.name.split(".")[0] for p in TRUST_FILES] == sorted(TRUSTED_SERVICE)


def test_every_placeholder_has_a_value_here_and_is_explained_in_the_readme():
    used = set().union(*(placeholders(json.loads(p.read_text())) for p in POLICY_DIR.glob("*.json")))
    assert used == set(SUBS)
    readme = README.read_text()
    assert [name for name in sorted(used) if f"${{{name}}}" not in readme] == []


def test_allows_matches_actions_resources_and_conditions():
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${LakeBucket}/${LakePrefix}/*"},
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "arn:aws:sqs:*:123456789012:q?"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lake/retail/secret/*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/r",
         "Condition": {"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}}},
    ]}
    subs = {"LakeBucket": "lake", "LakePrefix": "retail"}
    assert allows(policy, "s3:GetObject", "arn:aws:s3:::lake/retail/a/b.csv", substitutions=subs)
    assert allows(policy, "S3:getobject", "arn:aws:s3:::lake/retail/a/b.csv", substitutions=subs)  # actions: any case
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::lake/other/b.csv", substitutions=subs)
    assert not allows(policy, "s3:PutObject", "arn:aws:s3:::lake/retail/b.csv", substitutions=subs)
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::lake/retail/secret/k", substitutions=subs)  # Deny wins
    assert allows(policy, "sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:q1")
    assert not allows(policy, "sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:q12")
    assert allows(policy, "iam:PassRole", "arn:aws:iam::1:role/r", {"iam:PassedToService": "glue.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", "arn:aws:iam::1:role/r", {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", "arn:aws:iam::1:role/r")  # a condition key missing: not allowed
    with pytest.raises(ValueError, match="LakePrefix"):
        allows(policy, "s3:GetObject", "arn:aws:s3:::lake/x", substitutions={"LakeBucket": "lake"})


def test_check_calls_names_what_a_role_may_not_do():
    bad = [{"role": "dms", "service": "s3", "operation": "GetObject", "resource": "arn:aws:s3:::lake/retail/x"},
           {"role": "worker", "service": "s3", "operation": "ListObjectsV2", "resource": "arn:aws:s3:::other/p/"},
           {"role": "worker", "service": "glue", "operation": "CreateJob", "resource": None,
            "passed_role": "arn:aws:iam::123456789012:role/admin"},
           {"role": "nobody", "service": "s3", "operation": "GetObject", "resource": None}]
    problems = check_calls(bad, SUBS)
    assert len(problems) == 4, problems
    assert "dms: s3 GetObject on arn:aws:s3:::lake/retail/x needs s3:GetObject" in problems[0]
    assert "arn:aws:s3:::other needs s3:ListBucket" in problems[1]  # a list is checked against the bucket
    assert "iam:PassRole" in problems[2] and "unknown role 'nobody'" in problems[3]


def test_every_call_of_the_aws_target_is_allowed_by_its_roles_policy():
    assert check_calls(RECORDS, SUBS) == []


def test_every_listed_call_is_a_real_api_operation():
    session = botocore.session.get_session()
    unknown = [(service, operation) for _, service, operation, _, _ in CALLS
               if operation not in session.get_service_model(service).operation_names]
    assert unknown == []
    assert {(s, o) for _, s, o, _, _ in CALLS} >= set(PASSES)


@pytest.mark.parametrize("role", ROLES)
def test_every_granted_action_is_used_by_a_listed_call(role):
    policy = substitute(load_policy(role), SUBS)
    wanted = [need for record in RECORDS if record["role"] == role for need in needs(record, SUBS)]
    unused = [f"{statement.get('Sid')}: {action}" for statement in statements(policy)
              for action in as_list(statement["Action"])
              if not any(a == action and statement_applies(statement, a, resource, context)
                         for a, resource, context in wanted)]
    assert unused == [], f"{policy_path(role).name} grants what no call of the bundle needs"


def test_personalize_recommendations_stay_in_their_folder_and_names():
    """The service role writes only the batch jobs' folder (its import folder stays read-only); the worker passes
    batch jobs the Personalize role only, and touches solutions, filters and jobs named crosschannel-* only."""
    bad = [("personalize", "s3", "PutObject", f"{LAKE}/activation/personalize/dt=2026-11-01/a/interactions.csv"),
           ("personalize", "s3", "PutObject", f"{LAKE}/trusted/orders/dt=2026-11-01/_SUCCESS"),
           ("personalize", "s3", "GetObject", f"{LAKE}/trusted/orders/dt=2026-11-01/_SUCCESS"),
           ("worker", "personalize", "CreateSolution", "arn:aws:personalize:${Region}:${Account}:solution/other"),
           ("worker", "personalize", "DescribeFilter", "arn:aws:personalize:${Region}:${Account}:filter/other")]
    calls = [_record(role, service, operation, resource, None) for role, service, operation, resource in bad]
    calls.append({**_record("worker", "personalize", "CreateBatchInferenceJob", BATCH_JOB, None),
                  "passed_role": SUBS["SageMakerRoleArn"]})
    problems = check_calls(calls, SUBS)
    assert len(problems) == len(calls), problems
    assert "iam:PassRole" in problems[-1]
