"""The destinations' files: Pinpoint endpoints (opted-in, valid contacts of treatment members only, split under
the size limit), Personalize import modes, the publish decision (Personalize's files: test_personalize.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pandas as pd
import pytest

from crosschannel.core import paths, storage
from crosschannel.stages.activation import outbox, personalize, pinpoint
from crosschannel.stages.activation import profiles as activation
from crosschannel.stages.activation.outbox import ActivationError

DAY = dt.date(2026, 11, 3)


def _profile() -> pd.DataFrame:
    rows = [  # customer_id, email, email_opt_in, phone, sms_opt_in
        (1, "ann@example.com", True, "+15551234567", True),
        (2, "not-an-email", True, "+1 (555) 765-4321", True),  # bad email; phone with separators is fine
        (3, "cy@example.com", False, "5551234567", True),  # email opted out; no country code: not E.164
        (4, "dee@example.com", True, None, False),  # control member below: never exported
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "email", "email_opt_in", "phone", "sms_opt_in"])
    frame["user_id"] = frame["customer_id"].astype(str)
    frame["first_name"], frame["loyalty_tier"] = "Name\twith tab", "gold"
    for model in ("churn", "repurchase"):
        frame[f"{model}_probability"], frame[f"{model}_decile"] = 0.5, 5
        for n in (1, 2, 3):
            frame[f"{model}_reason_{n}"] = f"reason {n}"
    return frame


def _members() -> pd.DataFrame:
    return pd.DataFrame({"audience": "win_back", "customer_id": [1, 2, 3, 4], "detail": "churn decile 10",
                         "assignment": ["treatment", "treatment", "treatment", "control"]})


def test_pinpoint_endpoints_are_opted_in_valid_contacts_of_treatment_members(local_env):
    endpoints = pinpoint.pinpoint_endpoints("win_back", _members(), _profile())

    assert sorted(zip(endpoints["Id"], endpoints["Address"], strict=True)) == [
        ("email-1", "ann@example.com"), ("sms-1", "+15551234567"), ("sms-2", "+15557654321")]
    assert set(endpoints["ChannelType"]) == {"EMAIL", "SMS"}
    assert set(endpoints["User.UserAttributes.FirstName"]) == {"Name with tab"}  # no tabs or line breaks
    assert {"Attributes.churn_probability", "Attributes.repurchase_reason_3", "User.UserId"} <= set(endpoints)


def test_import_files_are_split_under_the_limit_each_with_the_header(local_env):
    frame = pd.DataFrame({"Id": [f"email-{i}" for i in range(1000)], "Address": "someone@example.com"})
    folder = paths.activation("pinpoint", DAY, "win_back")

    files = outbox.write_parts(folder, frame, max_bytes=4096)

    assert len(files) > 5
    rows = []
    for url in files:
        data = storage.location(url).read_bytes()
        assert len(data) <= 4096
        parsed = list(csv.reader(io.StringIO(data.decode())))
        assert parsed[0] == ["Id", "Address"]
        rows += parsed[1:]
    assert [r[0] for r in rows] == list(frame["Id"])
    assert not (folder / storage.MARKER).exists()  # Pinpoint imports every object of the folder


def test_a_part_never_ends_inside_a_record_whose_value_holds_a_unicode_line_separator(local_env):
    frame = pd.DataFrame({"Id": [f"email-{i}" for i in range(300)],
                          "User.UserAttributes.FirstName": [f"A\u2028{'x' * 40}\x85{i}" for i in range(300)]})

    files = outbox.write_parts(paths.activation("pinpoint", DAY, "win_back"), frame, max_bytes=1024)

    rows = []
    for url in files:
        parsed = list(csv.reader(io.StringIO(storage.location(url).read_bytes().decode(), newline="")))
        assert parsed[0] == list(frame.columns) and all(len(row) == 2 for row in parsed)
        rows += parsed[1:]
    assert rows == frame.values.tolist()


def test_import_mode_is_incremental_only_right_after_the_last_import(local_env):
    assert personalize.import_mode("interactions", DAY) == "FULL"  # the first load
    outbox.write_state("personalize", "interactions", {"partition": "2026-11-02"})

    assert personalize.import_mode("interactions", DAY) == "INCREMENTAL"
    assert personalize.import_mode("interactions", DAY + dt.timedelta(days=1)) == "FULL"  # a gap
    assert personalize.import_mode("interactions", dt.date(2026, 11, 2)) == "FULL"  # the same day again


def test_a_run_sends_only_for_the_newest_partition_unless_forced(local_env):
    for day in ("2026-11-02", "2026-11-03"):
        folder = storage.zone("ml", "churn", "scores", f"dt={day}", "scores")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / storage.MARKER).write_text("")

    assert activation.decide(DAY, force=False, backfill=False, run="r")["send"] is True
    assert activation.decide(dt.date(2026, 11, 2), force=False, backfill=False, run="r")["send"] is False
    assert activation.decide(DAY, force=False, backfill=True, run="r")["send"] is False
    assert activation.decide(dt.date(2026, 11, 2), force=True, backfill=True, run="r")["send"] is True


def test_a_request_that_does_not_match_the_api_is_refused(local_env):
    with pytest.raises(ActivationError, match="personalize CreateDatasetImportJob"):
        outbox.validate("personalize", "CreateDatasetImportJob", {"jobName": "x", "datasetArn": "arn"})


# ---- Issue 13: the Pinpoint and Customer Profiles CSVs against their documented contracts

def _csv(tmp_path, text: str) -> str:
    path = tmp_path / "part-00000.csv"
    path.write_bytes(text.encode())
    return path.as_uri()


ENDPOINT_HEADER = "ChannelType,Address,Id,User.UserId,Attributes.audience_detail,OptOut\n"
GOOD_ENDPOINTS = ENDPOINT_HEADER + "EMAIL,ann@example.com,email-1,1,churn decile 10,NONE\n" \
                                   "SMS,+15551234567,sms-1,1,churn decile 10,NONE\n"


def test_pinpoint_endpoint_files_of_the_plan_pass_their_contract(local_env, tmp_path):
    endpoints = pinpoint.pinpoint_endpoints("win_back", _members(), _profile())
    files = outbox.write_parts(paths.activation("pinpoint", DAY, "win_back"), endpoints, 1 << 20)

    pinpoint.check_endpoint_files(files)
    pinpoint.check_endpoint_files([_csv(tmp_path, GOOD_ENDPOINTS)])


@pytest.mark.parametrize(("line", "problem"), [
    ("SMS,5551234567,sms-2,2,d,NONE", r"line 4 '5551234567'.*expected a phone number in E\.164"),
    ("EMAIL,not-an-email,email-2,2,d,NONE", r"column 'Address': line 4 'not-an-email'.*an email address"),
    ("PUSH,token,push-2,2,d,NONE", r"column 'ChannelType': line 4 'PUSH'.*expected one of \['EMAIL', 'SMS'\]"),
    ("EMAIL,bob@example.com,email-1,2,d,NONE", r"column 'Id': line 4 'email-1'.*each endpoint id once"),
    ("EMAIL,bob@example.com,,2,d,NONE", r"column 'Id': line 4 ''.*expected an endpoint id"),
    ("EMAIL,bob@example.com,email-2,2," + "x" * 101 + ",NONE",
     r"column 'Attributes.audience_detail': line 4 'x{101}'.*at most 100 characters"),
    ("EMAIL,bob@example.com,email-2,2,d,SOME", r"column 'OptOut': line 4 'SOME'.*ALL or NONE"),
])
def test_a_pinpoint_endpoint_file_that_breaks_the_contract_is_refused_naming_file_line_and_column(
        local_env, tmp_path, line, problem):
    url = _csv(tmp_path, GOOD_ENDPOINTS + line + "\n")

    with pytest.raises(outbox.ActivationError, match=problem) as refused:
        pinpoint.check_endpoint_files([url])

    assert str(refused.value).startswith(f"pinpoint: {url} breaks the endpoint import contract: ")


@pytest.mark.parametrize(("header", "problem"), [
    ("ChannelType,Address,Id,Nickname", r"line 1: column 'Nickname' is not an endpoint attribute"),
    ("ChannelType,Address,Id,Attributes." + "n" * 51, r"the attribute name has 51 characters, expected at most 50"),
    ("ChannelType,Address,User.UserId", r"line 1: no column 'Id'"),
])
def test_a_pinpoint_header_outside_the_endpoint_attributes_is_refused(local_env, tmp_path, header, problem):
    with pytest.raises(outbox.ActivationError, match=problem):
        pinpoint.check_endpoint_files([_csv(tmp_path, header + "\nEMAIL,a@example.com,email-1,x\n")])


def test_a_quoted_line_break_is_refused_and_later_lines_are_counted_as_in_the_file(local_env, tmp_path):
    text = ENDPOINT_HEADER + 'EMAIL,ann@example.com,email-1,1,"two\nlines",NONE\nSMS,555,sms-1,1,d,NONE\n'

    with pytest.raises(outbox.ActivationError) as refused:
        pinpoint.check_endpoint_files([_csv(tmp_path, text)])

    assert "column 'Attributes.audience_detail': line 2 'two\\nlines'" in str(refused.value)
    assert "column 'Address': line 4 '555'" in str(refused.value)  # the record after the two-line one


def test_one_pinpoint_import_job_stays_within_1_gb(local_env, tmp_path, monkeypatch):
    monkeypatch.setattr(pinpoint, "MAX_IMPORT_BYTES", len(GOOD_ENDPOINTS) + 10)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    urls = [_csv(first, GOOD_ENDPOINTS), _csv(second, GOOD_ENDPOINTS.replace("-1,", "-9,"))]

    with pytest.raises(outbox.ActivationError, match=r"the import's files reach .* bytes: one import job takes up "
                                                     r"to 1 GB"):
        pinpoint.check_endpoint_files(urls)


def _upload(local_env) -> pd.DataFrame:
    from crosschannel.stages.activation import customer_profiles

    profile = _profile()
    profile["last_name"], profile["audiences"] = "Last", [["win_back"]] * len(profile)
    return customer_profiles.profile_upload(profile)


def _check_upload(frame: pd.DataFrame, fields: dict | None = None) -> str:
    from crosschannel.stages.activation import customer_profiles

    (url,) = outbox.write_parts(paths.activation("customer_profiles", DAY, "upload"), frame, 1 << 40)
    customer_profiles.check_upload_file(url, fields or customer_profiles.profile_fields(frame.columns.to_list()))
    return url


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("customer_id", "1", r"column 'customer_id': line 3 '1' \(1 row\(s\)\): expected each key once"),
    ("customer_id", "", r"column 'customer_id': line 3 ''.*expected a value \(the UniqueKey\)"),
    ("email", "not-an-email", r"column 'email': line 3 'not-an-email'.*expected an email address or empty"),
    ("phone", "555-1234", r"column 'phone': line 3 '555-1234'.*expected an E\.164 phone number or empty"),
    ("churn_probability", "high", r"column 'churn_probability': line 3 'high'.*expected a finite number or empty"),
    ("first_name", "n" * 256, r"column 'first_name': line 3 'n{256}'.*expected at most 255 characters"),
])
def test_a_customer_profiles_upload_that_breaks_the_contract_is_refused_naming_file_line_and_column(
        local_env, column, value, problem):
    frame = _upload(local_env)
    _check_upload(frame)  # the upload as the stage builds it passes
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[1], column] = value

    with pytest.raises(outbox.ActivationError, match=problem) as refused:
        _check_upload(frame)

    assert "customer_profiles: file://" in str(refused.value) and "breaks the upload contract" in str(refused.value)


def test_a_customer_profiles_header_that_is_not_the_field_mapping_is_refused(local_env):
    from crosschannel.stages.activation import customer_profiles

    frame = _upload(local_env)
    fields = customer_profiles.profile_fields([c for c in frame.columns if c != "loyalty_tier"])

    with pytest.raises(outbox.ActivationError, match=r"line 1: header .* does not match the upload job's field "
                                                     r"mapping"):
        _check_upload(frame, fields)
