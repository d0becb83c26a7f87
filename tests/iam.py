"""The IAM policies of include/aws/iam/ as a test helper: which IAM actions an API call needs (`actions_for`), whether a
policy allows an action on a resource (`allows`), and which recorded calls a role's policy would refuse
(`check_calls`). No tests here: tests/test_iam.py checks the policies statically, the aws end-to-end test with the
calls it records from the moto server.

A call record: {"role": "worker" | "glue" | "sagemaker" | "dms" | "personalize" | "pinpoint_import",
"service": a botocore service name ("s3", "customer-profiles"), "operation": its operation name ("ListObjectsV2"),
"resource": the ARN the call acts on ("arn:aws:s3:::lake/data/x"; for S3 the object, or the listed prefix) or None
(checked against any resource the policy names)}, and optionally "context" (condition keys, e.g.
{"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}), "source" (the source object ARN of CopyObject and
UploadPartCopy) and "passed_role" (the role ARN a call passes; by default the configured one, from the
substitutions).

Policies name deployment values as `${Name}` placeholders (README "Going live on AWS"); `substitutions` maps each
Name to its value ({"LakeBucket": "lake", "LakePrefix": "data", "Account": "123456789012", ...}).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parents[1] / "include" / "aws" / "iam"
ROLES = ("worker", "glue", "sagemaker", "dms", "personalize", "pinpoint_import")
# The service principal that assumes each role (<role>.trust.json); the worker's depends on where Airflow runs
TRUSTED_SERVICE = {"glue": "glue.amazonaws.com", "sagemaker": "sagemaker.amazonaws.com", "dms": "dms.amazonaws.com",
                   "personalize": "personalize.amazonaws.com", "pinpoint_import": "pinpoint.amazonaws.com"}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")  # ${aws:...} policy variables have a colon: left alone

# The IAM service prefix of each botocore service name whose prefix differs from its name
PREFIXES = {"customer-profiles": "profile", "pinpoint": "mobiletargeting"}
# Operations whose IAM action is not <prefix>:<Operation> (Service Authorization Reference, "API operations" tables)
ACTIONS = {
    ("s3", "ListObjectsV2"): ["s3:ListBucket"],
    ("s3", "ListObjects"): ["s3:ListBucket"],
    ("s3", "HeadBucket"): ["s3:ListBucket"],
    ("s3", "HeadObject"): ["s3:GetObject"],
    ("s3", "CreateMultipartUpload"): ["s3:PutObject"],
    ("s3", "UploadPart"): ["s3:PutObject"],
    ("s3", "CompleteMultipartUpload"): ["s3:PutObject"],
    ("s3", "CopyObject"): ["s3:GetObject", "s3:PutObject"],
    ("s3", "UploadPartCopy"): ["s3:GetObject", "s3:PutObject"],
    ("s3", "DeleteObjects"): ["s3:DeleteObject"],
    ("s3", "ListParts"): ["s3:ListMultipartUploadParts"],
    ("s3", "ListMultipartUploads"): ["s3:ListBucketMultipartUploads"],
}
# S3 operations authorized against the bucket, not the object: their resource is cut to the bucket's ARN
BUCKET_LEVEL = {"ListObjectsV2", "ListObjects", "HeadBucket", "ListMultipartUploads", "GetBucketLocation"}
# Operations that pass a role: the substitution naming the configured role and the service it is passed to
PASSES = {
    ("glue", "CreateJob"): ("GlueRoleArn", "glue.amazonaws.com"),
    ("glue", "UpdateJob"): ("GlueRoleArn", "glue.amazonaws.com"),
    ("sagemaker", "CreateHyperParameterTuningJob"): ("SageMakerRoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateTrainingJob"): ("SageMakerRoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateModel"): ("SageMakerRoleArn", "sagemaker.amazonaws.com"),
    ("personalize", "CreateDatasetImportJob"): ("PersonalizeRoleArn", "personalize.amazonaws.com"),
    ("personalize", "CreateBatchInferenceJob"): ("PersonalizeRoleArn", "personalize.amazonaws.com"),
    ("pinpoint", "CreateImportJob"): ("PinpointRoleArn", "pinpoint.amazonaws.com"),
}


def actions_for(service: str, operation: str) -> list[str]:
    """The IAM actions a botocore `service`'s `operation` needs ("s3", "HeadObject" -> ["s3:GetObject"])."""
    return list(ACTIONS.get((service, operation)) or [f"{PREFIXES.get(service, service)}:{operation}"])


def policy_path(role: str, kind: str = "") -> Path:
    """include/aws/iam/<role>.json, or <role>.<kind>.json (kind "trust")."""
    return POLICY_DIR / f"{role}{'.' + kind if kind else ''}.json"


@functools.cache
def _load(path: Path) -> str:
    return path.read_text()


def load_policy(role: str, kind: str = "") -> dict:
    return json.loads(_load(policy_path(role, kind)))


def statements(policy: dict) -> list[dict]:
    found = policy.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def placeholders(policy: dict) -> set[str]:
    return set(PLACEHOLDER.findall(json.dumps(policy)))


def substitute(policy: dict, substitutions: dict) -> dict:
    """The policy with every ${Name} replaced; a placeholder without a value is an error naming it."""
    missing = placeholders(policy) - set(substitutions)
    if missing:
        raise ValueError(f"no substitution for {', '.join(sorted(missing))}")
    return json.loads(PLACEHOLDER.sub(lambda m: str(substitutions[m[1]]).replace('"', '\\"'), json.dumps(policy)))


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard matching: `*` any run of characters (`/` and `:` included), `?` any one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _compare(operator: str, wanted: str, actual: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return wanted == actual
    if operator == "StringEqualsIgnoreCase":
        return wanted.lower() == actual.lower()
    if operator in ("StringLike", "ArnLike"):
        return matches(wanted, actual)
    if operator == "Bool":
        return wanted.lower() == str(actual).lower()
    raise ValueError(f"condition operator {operator} is not evaluated by tests/iam.py")


def _condition_holds(operator: str, key_values: dict, context: dict) -> bool:
    negated = operator.startswith(("StringNot", "ArnNot"))
    base = operator.removesuffix("IfExists").replace("Not", "", 1) if negated else operator.removesuffix("IfExists")
    for key, wanted in key_values.items():
        if key not in context:
            if operator.endswith("IfExists") or negated:
                continue
            return False
        actual = as_list(context[key])
        hit = any(_compare(base, str(w), str(a)) for w in as_list(wanted) for a in actual)
        if hit == negated:
            return False
    return True


def statement_applies(statement: dict, action: str, resource: str | None, context: dict) -> bool:
    """Does the statement cover the action (Action / NotAction), the resource (Resource / NotResource; any when
    `resource` is None) and do its conditions hold in `context`?"""
    if "Action" in statement:
        if not any(matches(p, action, ignore_case=True) for p in as_list(statement["Action"])):
            return False
    elif any(matches(p, action, ignore_case=True) for p in as_list(statement.get("NotAction"))):
        return False
    if resource is not None:
        if "Resource" in statement:
            if not any(matches(p, resource) for p in as_list(statement["Resource"])):
                return False
        elif any(matches(p, resource) for p in as_list(statement.get("NotResource"))):
            return False
    return all(_condition_holds(op, keys, context) for op, keys in (statement.get("Condition") or {}).items())


def allows(policy: dict, action: str, resource: str | None = None, context: dict | None = None,
           substitutions: dict | None = None) -> bool:
    """Whether the identity policy allows `action` on `resource`: some Allow statement applies and no Deny does.
    With `substitutions`, the policy's ${Name} placeholders are replaced first."""
    if substitutions is not None:
        policy = substitute(policy, substitutions)
    applying = [s for s in statements(policy) if statement_applies(s, action, resource, context or {})]
    return bool(applying) and all(s.get("Effect") != "Deny" for s in applying) and any(
        s.get("Effect") == "Allow" for s in applying)


def _bucket(arn: str) -> str:
    return "arn:aws:s3:::" + arn.removeprefix("arn:aws:s3:::").split("/", 1)[0]


def needs(call: dict, substitutions: dict) -> list[tuple[str, str | None, dict]]:
    """Every (action, resource, context) a recorded call must be allowed, the role it passes included."""
    service, operation, resource = call["service"], call["operation"], call.get("resource")
    context = dict(call.get("context") or {})
    if service == "s3" and resource and operation in BUCKET_LEVEL:
        resource = _bucket(resource)
    wanted = [(action, resource, context) for action in actions_for(service, operation)]
    if service == "s3" and call.get("source") and operation in ("CopyObject", "UploadPartCopy"):
        wanted.append(("s3:GetObject", call["source"], context))
    if (service, operation) in PASSES:
        key, to_service = PASSES[(service, operation)]
        passed = call.get("passed_role") or substitutions.get(key)
        wanted.append(("iam:PassRole", passed, {**context, "iam:PassedToService": to_service}))
    return wanted


def check_calls(calls: list[dict], substitutions: dict) -> list[str]:
    """The calls their role's policy does not allow, one line each (empty when every call is allowed)."""
    problems = []
    policies: dict[str, dict] = {}
    for call in calls:
        role = call.get("role")
        if role not in ROLES:
            problems.append(f"{call}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
            continue
        if role not in policies:
            policies[role] = substitute(load_policy(role), substitutions)
        for action, resource, context in needs(call, substitutions):
            if not allows(policies[role], action, resource, context):
                problems.append(f"{role}: {call['service']} {call['operation']} on {resource or '(any resource)'} "
                                f"needs {action}, which include/aws/iam/{role}.json does not allow"
                                + (f" (context {context})" if context else ""))
    return problems
