"""Consent is law: a contact field leaves for a destination only if the customer opted in for its channel.
One test per destination reads what would leave (the files and messages written) and finds no contact of an
opted-out or deleted customer; the policy itself is checked over every combination of opt-in and validity."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json

import pandas as pd
import pytest

from crosschannel.core import paths, storage
from crosschannel.stages.activation import consent, customer_profiles, pinpoint, segment
from crosschannel.stages.activation.outbox import ActivationError

DAY = dt.date(2026, 11, 3)
SEND = {"send": True, "reason": "the newest partition", "force": False, "attempt": "20261103T070000000000Z-test"}
OPTED_IN = {"ann@example.com", "+15551234567", "bob@example.com", "+15557654321"}
NEVER = {"cy@example.com", "+15550000003", "dee@example.com", "+15550000004", "eve@example.com", "+15550000005"}


def _profile() -> pd.DataFrame:
    """Scored customers: 1 opted in to both, 2 with an invalid phone, 3 opted out of both, 4 of email only, 5
    deleted at the source (scored, no trusted row: contact and opt-ins missing, as `profiles.profiles` leaves
    them)."""
    rows = [  # customer_id, email, email_opt_in, phone, sms_opt_in
        (1, "ann@example.com", True, "+15551234567", True),
        (2, "bob@example.com", True, "+15550000002x", True),  # phone not E.164: not sent
        (3, "cy@example.com", False, "+15550000003", False),  # opted out of both
        (4, "dee@example.com", False, "+15557654321", True),  # email opted out, SMS in
        (5, None, None, None, None),  # deleted at the source
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "email", "email_opt_in", "phone", "sms_opt_in"])
    frame["user_id"] = frame["customer_id"].astype(str)
    frame["first_name"], frame["last_name"], frame["loyalty_tier"] = "Name", "Last", "gold"
    for model in ("churn", "repurchase"):
        frame[f"{model}_probability"], frame[f"{model}_decile"] = 0.5, 5
        for n in (1, 2, 3):
            frame[f"{model}_reason_{n}"] = f"reason {n}"
    frame["audiences"] = [["win_back"]] * len(frame)
    frame["recommended"] = [[{"id": str(90 + c), "name": f"Rec-for-{c}", "category": "toys", "price": 9.5}]
                            for c in frame["customer_id"]]
    return frame


def _written(folder) -> str:
    return "".join(p.read_text() for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in (".csv", ".jsonl"))


def _contacts_in(text: str) -> set[str]:
    return {value for value in OPTED_IN | NEVER if value in text}


@pytest.mark.parametrize("destination", sorted(consent.DESTINATION_CHANNELS))
def test_the_policy_lets_a_contact_leave_only_with_its_channels_opt_in(destination):
    values = {"email": ("ann@example.com", "not-an-email", None), "phone": ("+15551234567", "555", None)}
    opt_ins = (True, False, None)
    rows = list(itertools.product(values["email"], opt_ins, values["phone"], opt_ins))
    frame = pd.DataFrame(rows, columns=["email", "email_opt_in", "phone", "sms_opt_in"])

    allowed = consent.contacts(frame, destination)

    channels = consent.DESTINATION_CHANNELS[destination]
    for (email, email_in, phone, sms_in), (_, out) in zip(rows, allowed.iterrows(), strict=True):
        expected_email = email if "email" in channels and email_in is True and email == "ann@example.com" else None
        expected_phone = phone if "sms" in channels and sms_in is True and phone == "+15551234567" else None
        assert (None if pd.isna(out["email"]) else out["email"]) == expected_email
        assert (None if pd.isna(out["phone"]) else out["phone"]) == expected_phone


def test_customer_profiles_upload_carries_only_consented_contacts(local_env):
    customer_profiles.plan_customer_profiles(DAY, SEND, _profile(), "run")

    upload = _written(paths.delivery("customer_profiles", DAY, SEND["attempt"], "upload"))
    assert _contacts_in(upload) == {"ann@example.com", "+15551234567", "bob@example.com", "+15557654321"}
    rows = {line.split(",")[0]: line for line in upload.splitlines()[1:]}
    assert set(rows) == {"1", "2", "3", "4", "5"}  # every scored profile is uploaded, without what may not leave


def test_pinpoint_endpoints_carry_only_consented_contacts(local_env):
    members = pd.DataFrame({"audience": "win_back", "customer_id": [1, 2, 3, 4, 5], "detail": "d",
                            "assignment": "treatment"})

    pinpoint.plan_pinpoint(DAY, SEND, members, _profile())

    endpoints = _written(paths.delivery("pinpoint", DAY, SEND["attempt"]))
    assert _contacts_in(endpoints) == {"ann@example.com", "+15551234567", "bob@example.com", "+15557654321"}


def test_segment_identify_traits_carry_no_contact(local_env):
    plan = segment.plan(DAY, SEND, _profile())

    messages = storage.location(plan["files"][0]).read_text()
    assert len(messages.splitlines()) == 5
    assert _contacts_in(messages) == set()
    assert not {"email", "phone"} & set(json.loads(messages.splitlines()[0])["traits"])


def test_a_destination_without_contacts_refuses_a_contact_field_before_writing():
    with pytest.raises(ActivationError, match=r"personalize: the users dataset would carry .*\['EMAIL'\]"):
        consent.refuse_contacts("personalize", ["USER_ID", "EMAIL"], "the users dataset")
    with pytest.raises(ActivationError, match=r"segment: .*\['phone'\]"):
        consent.refuse_contacts("segment", ["churn_probability", "phone"], "the identify traits")
    consent.refuse_contacts("customer_profiles", ["email", "phone"], "the upload")  # it takes both channels


def test_personalize_schemas_declare_no_contact_field():
    from crosschannel.stages.activation import personalize

    for dataset in personalize.PERSONALIZE_DATASETS:
        fields = [f["name"] for f in personalize.schema(dataset)["fields"]]
        consent.refuse_contacts("personalize", fields, f"the {dataset} dataset")


def test_no_recommendation_leaves_without_consent_or_for_a_control_member(local_env):
    """Recommendations are for messages: only treatment members opted in to a channel (2: email, 4: SMS) get theirs,
    in every destination; 1 is a control member today (opted in to both), 3 opted out, 5 deleted at the source."""
    profile = _profile()
    profile.loc[profile["customer_id"] == 1, "audiences"] = pd.Series([[]], index=profile.index[:1])
    members = pd.DataFrame({"audience": "win_back", "customer_id": [1, 2, 3, 4, 5], "detail": "d",
                            "assignment": ["control", "treatment", "treatment", "treatment", "treatment"]})

    customer_profiles.plan_customer_profiles(DAY, SEND, profile, "run")
    pinpoint.plan_pinpoint(DAY, SEND, members, profile)
    plan = segment.plan(DAY, SEND, profile)

    written = {"customer_profiles": _written(paths.delivery("customer_profiles", DAY, SEND["attempt"], "upload")),
               "pinpoint": _written(paths.delivery("pinpoint", DAY, SEND["attempt"])),
               "segment": storage.location(plan["files"][0]).read_text()}
    for destination, text in written.items():
        found = {c for c in range(1, 6) if f"Rec-for-{c}" in text}
        assert found == {2, 4}, f"{destination} carries the recommendations of {sorted(found)}"
    traits = {json.loads(line)["user_id"]: json.loads(line)["traits"] for line in written["segment"].splitlines()}
    assert traits["2"]["recommended_products"] == [{"id": "92", "name": "Rec-for-2", "category": "toys",
                                                    "price": 9.5}]
    assert traits["1"]["recommended_products"] == [] and traits["3"]["recommended_products"] == []
    upload = pd.read_csv(io.StringIO(written["customer_profiles"]), dtype=str, keep_default_na=False)
    assert upload.set_index("customer_id").loc["4", ["recommended_1_id", "recommended_1_price"]].tolist() == \
        ["94", "9.5"]
    assert upload.set_index("customer_id").loc["3", "recommended_1_id"] == ""
